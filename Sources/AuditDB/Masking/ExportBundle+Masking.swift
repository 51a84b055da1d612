import CAuditCore

/// Masked fields in export bundles (docs/FORMAT.md section 17.6): a masked field is withheld —
/// only its commitment enters the proof — and carries `"masked":{"rules":[…],"shown":…,
/// "proven":false}`, the masked rendering for a reader, which no proof covers.
extension AuditStore {
    /// The `,"masked":{…}` member of a withheld field's object, or "" when no rule names the
    /// field or its value is NULL.
    static func maskedDisplay(_ field: WithholdableField, _ value: adb_bytes, _ masking: MaskingPolicy, seq: Int64)
        throws(AuditError) -> String
    {
        guard !masking.isEmpty, let text = try RowView.validString(value, field: field.rawValue, seq: seq),
              let display = masking.exportDisplay(field, value: text)
        else { return "" }
        return ",\"masked\":{\"rules\":[" + display.rules.map { OutputEscaping.jsonQuoted($0.description) }.joined(separator: ",")
            + "],\"shown\":\(OutputEscaping.jsonQuoted(display.shown)),\"proven\":false}"
    }
}

extension ExportBundle {
    /// Checks a withheld field's `masked` member (17.6); nil if well-formed. It is unproven, so
    /// only its shape is checked: an object of exactly `rules` (1 to 256 rules of this field),
    /// `shown` (a string) and `proven` (the literal `false`).
    static func maskedProblem(_ masked: JSON, field: WithholdableField) -> String? {
        guard let object = masked.object, object.firstKey(notIn: ["rules", "shown", "proven"]) == nil,
              object["shown"]?.text != nil, object["proven"].map({ if case .bool(false) = $0 { true } else { false } }) == true,
              let rules = object["rules"]?.elements, (1...256).contains(rules.count)
        else { return "field \(field.rawValue) has a masked display that is not {\"rules\":[…],\"shown\":…,\"proven\":false}" }
        for rule in rules {
            var ofField = false
            if let text = rule.text {
                do { ofField = try MaskRule(parsing: text).path.field == field } catch { ofField = false }  // not a rule: reported below
            }
            if !ofField { return "field \(field.rawValue) has a masked display whose rules are not rules of \(field.rawValue)" }
        }
        return nil
    }
}
