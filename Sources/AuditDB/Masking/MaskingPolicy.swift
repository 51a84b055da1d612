/// A value that a ``MaskingPolicy`` masked: where, how, and what is shown instead.
public struct MaskedValue: Sendable, Hashable {
    /// The field, or the member inside `details`.
    public let path: MaskPath
    public let method: MaskMethod
    /// What is shown instead of the value: `j***@example.com`, `***`, `hmac:<32 hex>`.
    public let shown: String
}

/// Which values to mask on output, and the key for hash masks (docs/masking.md).
///
/// Masking changes what a reader is shown, never what is stored or what a filter matches
/// (`actor: "alice"` still finds alice's rows). A NULL value stays NULL (it holds no data); an
/// erased field stays erased. A rule inside another rule's path (`details.email` under
/// `details`) has no effect of its own.
///
/// ```swift
/// let policy = try MaskingPolicy(rules: [MaskRule(parsing: "details.email=hash"), MaskRule(parsing: "actor=partial")],
///                                key: MaskingKey.load(path: "/etc/myapp/mask.key"))
/// let page = try await store.masked(by: policy).page(EntryQuery(action: "login"))
/// ```
public struct MaskingPolicy: Sendable {
    /// The rules, sorted by path (``MaskPath``), one per path.
    public let rules: [MaskRule]
    /// The key of hash masks.
    public let key: MaskingKey?

    /// No masking.
    public static let none = MaskingPolicy(sorted: [], key: nil)

    private init(sorted rules: [MaskRule], key: MaskingKey?) {
        self.rules = rules
        self.key = key
    }

    /// A policy of `rules`.
    /// - Throws: ``AuditError`` `invalidInput` when two rules mask one path with different
    ///   methods, or a hash rule has no key.
    public init(rules: [MaskRule], key: MaskingKey? = nil) throws(AuditError) {
        var byPath: [MaskPath: MaskRule] = [:]
        for rule in rules {
            if let other = byPath[rule.path], other.method != rule.method {
                throw AuditError(.invalidInput, "\(rule.path) is masked twice, with \(other.method.rawValue) and \(rule.method.rawValue); keep one", field: "mask")
            }
            byPath[rule.path] = rule
        }
        if key == nil, let hashed = byPath.values.sorted().first(where: { $0.method == .hash }) {
            throw AuditError(.invalidInput, "the mask \(hashed) needs a masking key: pass --mask-key FILE or set AUDITDB_MASK_KEY_FILE (make one with `auditdb keys generate --out mask.key`; it must not be the row key file)", field: "--mask-key")
        }
        self.init(sorted: byPath.values.sorted(), key: key)
    }

    /// Whether it masks nothing.
    public var isEmpty: Bool { rules.isEmpty }

    /// This policy with `extra` rules added (a command's `--mask` on top of the store's
    /// masking entry). An extra rule may mask more, never less: one that names a path this
    /// policy masks with another method is refused.
    /// - Throws: ``AuditError`` `invalidInput`.
    public func adding(_ extra: [MaskRule], key extraKey: MaskingKey? = nil) throws(AuditError) -> MaskingPolicy {
        for rule in extra {
            if let mine = rules.first(where: { $0.path == rule.path }), mine.method != rule.method {
                throw AuditError(.invalidInput, "the store masks \(mine.path) with \(mine.method.rawValue) (`auditdb masking show`); --mask \(rule) cannot change it", field: "--mask")
            }
        }
        return try MaskingPolicy(rules: rules + extra, key: extraKey ?? key)
    }

    /// The rules that take effect: those not inside another rule's path.
    var effectiveRules: [MaskRule] {
        rules.filter { rule in !rules.contains { $0.path != rule.path && $0.path.covers(rule.path) } }
    }

    /// `entry` as a reader of this policy sees it: each masked value replaced, and listed in
    /// ``AuditEntry/masked``.
    public func apply(to entry: AuditEntry) -> AuditEntry {
        guard !rules.isEmpty else { return entry }
        var out = entry
        var members: [MaskRule] = []
        for rule in effectiveRules {
            let field = rule.path.field
            guard !entry.isErased(field) else { continue }
            guard rule.path.members.isEmpty else {
                members.append(rule)
                continue
            }
            switch field {
            case .actor:
                guard let value = entry.actor else { continue }
                out.actor = nil
                out.masked.append(MaskedValue(path: rule.path, method: rule.method, shown: shown(rule.method, text: value)))
            case .source:
                guard let value = entry.source else { continue }
                out.source = nil
                out.masked.append(MaskedValue(path: rule.path, method: rule.method, shown: shown(rule.method, text: value)))
            case .details:
                guard let value = entry.detailsJSON else { continue }
                out.detailsJSON = nil
                out.masked.append(MaskedValue(path: rule.path, method: rule.method, shown: shown(rule.method, json: Array(value.utf8))))
            }
        }
        if !members.isEmpty, let details = out.detailsJSON {
            let (text, masked) = mask(details: details, members)
            out.detailsJSON = text
            out.masked = (out.masked + masked).sorted { $0.path < $1.path }
        }
        return out
    }

    /// How a reader of this policy is shown the name of a person that is not an entry's `actor`
    /// value itself but stands for one: who placed or released a legal hold, who set the masking
    /// rules (each the actor of AuditDB's own entry, which queries show masked). The actor rule's
    /// rendering of `actor`, or nil when no rule masks the actor field.
    public func maskedActor(_ actor: String) -> MaskedValue? {
        guard let rule = effectiveRules.first(where: { $0.path.field == .actor && $0.path.members.isEmpty }) else { return nil }
        return MaskedValue(path: rule.path, method: rule.method, shown: shown(rule.method, text: actor))
    }

    /// The fields an export withholds for this policy: each field a rule names (docs/FORMAT.md 17.6).
    var fields: Set<WithholdableField> { Set(rules.map(\.path.field)) }

    /// The same policy without the rules of `fields` (an export shows no masked rendering of a
    /// field it was asked to withhold whole).
    func removing(_ fields: Set<WithholdableField>) -> MaskingPolicy {
        MaskingPolicy(sorted: rules.filter { !fields.contains($0.path.field) }, key: key)
    }

    /// What an export shows next to a withheld field (docs/FORMAT.md 17.6), unproven: the rules
    /// that apply to `field` and the masked rendering of its `value`; nil if no rule names it.
    func exportDisplay(_ field: WithholdableField, value: String) -> (rules: [MaskRule], shown: String)? {
        let applicable = effectiveRules.filter { $0.path.field == field }
        guard let first = applicable.first else { return nil }
        guard first.path.members.isEmpty else { return (applicable, mask(details: value, applicable).0) }
        return ([first], field == .details ? shown(first.method, json: Array(value.utf8)) : shown(first.method, text: value))
    }

    /// `details` with each member of `rules` that holds a value other than null replaced by
    /// `{"masked":METHOD,"value":SHOWN}`, spliced into the stored text (nothing else changes).
    private func mask(details: String, _ rules: [MaskRule]) -> (String, [MaskedValue]) {
        var bytes = Array(details.utf8)
        let found: [Int: (range: Range<Int>, value: JSON)]
        do {
            found = try bytes.withUnsafeBufferPointer { buffer throws(JSONError) in
                try JSONReader.valueRanges(of: rules.map(\.path.members), in: buffer, limits: .details)
            }
        } catch {
            // Stored details were checked when appended and verified when read; should one
            // not parse, none of it is shown rather than an unmasked member.
            return ("{\"masked\":\"unreadable details\"}", rules.map { MaskedValue(path: $0.path, method: $0.method, shown: "***") })
        }
        var masked: [MaskedValue] = []
        for (n, hit) in found.sorted(by: { $0.value.range.lowerBound > $1.value.range.lowerBound }) where !hit.value.isNull {
            let rule = rules[n]
            let value = hit.value.text.map { shown(rule.method, text: $0) } ?? shown(rule.method, json: Array(bytes[hit.range]))
            masked.append(MaskedValue(path: rule.path, method: rule.method, shown: value))
            let replacement = "{\"masked\":\"\(rule.method.rawValue)\",\"value\":\(OutputEscaping.jsonQuoted(value))}"
            bytes.replaceSubrange(hit.range, with: Array(replacement.utf8))
        }
        return (String(decoding: bytes, as: UTF8.self), masked)
    }

    /// What a string value is shown as.
    private func shown(_ method: MaskMethod, text: String) -> String {
        switch method {
        case .hash: return key!.token(text.utf8)  // the initialiser requires a key for hash rules
        case .partial: return Self.partial(text)
        }
    }

    /// What a value that is not a string (a number, an object, the whole details) is shown as:
    /// partial shows nothing of it; hash hashes its JSON text as stored.
    private func shown(_ method: MaskMethod, json: [UInt8]) -> String {
        switch method {
        case .hash: return key!.token(json)
        case .partial: return "***"
        }
    }

    /// The partial mask of `text` (docs/masking.md), by Unicode scalars: an e-mail address
    /// (a last `@` with text on both sides) keeps the first scalar and the domain,
    /// `j***@example.com`; other text of 5 scalars or more keeps the first and last,
    /// `a***e`; shorter text is `***`. The length is never shown.
    static func partial(_ text: String) -> String {
        let scalars = Array(text.unicodeScalars)
        func string(_ s: ArraySlice<Unicode.Scalar>) -> String { String(String.UnicodeScalarView(s)) }
        if let at = scalars.lastIndex(of: "@"), at > 0, at < scalars.count - 1 {
            return string(scalars[0..<1]) + "***@" + string(scalars[(at + 1)...])
        }
        guard scalars.count >= 5 else { return "***" }
        return string(scalars[0..<1]) + "***" + string(scalars[(scalars.count - 1)...])
    }
}
