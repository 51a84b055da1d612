extension AuditEntry {
    /// The `details` of one of AuditDB's own entries (a hold, an expiry) as a JSON object, read
    /// with the strict reader (FORMAT.md section 18); the failure says why, for the caller to name
    /// the entry.
    func strictDetails() -> Result<JSONObject, DetailsProblem> {
        guard let json = detailsJSON else { return .failure(DetailsProblem(reason: "it has no details")) }
        var copy = json
        return copy.withUTF8 { bytes in
            do throws(JSONError) {
                return .success(try JSONReader.readObject(bytes, limits: .details, validUTF8: true).members)
            } catch {
                return .failure(DetailsProblem(reason: "its details are not valid JSON (\(error))"))
            }
        }
    }
}

/// Why an entry's details could not be read (``AuditEntry/strictDetails()``).
struct DetailsProblem: Error {
    let reason: String
}
