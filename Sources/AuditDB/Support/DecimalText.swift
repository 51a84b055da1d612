/// Whole numbers written as text by people and by AuditDB itself (seqs in cursors, `--seqs`,
/// cursor files): ASCII decimal digits only, no sign, no leading zero, no spaces. Swift's
/// `Int64(_:)` also reads `+7` and `007`; one number has one spelling here, so a cursor or a
/// seq list that was edited by hand is refused rather than read as something nearby.
public enum DecimalText {
    /// The value of `text`, or nil unless it is `0` or a digit 1-9 followed by digits, within
    /// `Int64`.
    public static func nonNegativeInt64(_ text: some StringProtocol) -> Int64? {
        let utf8 = text.utf8
        guard let first = utf8.first, utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        guard first != 0x30 || utf8.count == 1 else { return nil }
        return Int64(text)
    }
}
