import Foundation
import Testing

@testable import AuditDB

/// What the strict reader (FORMAT.md section 18) makes of what it accepts. What it refuses, and
/// why, is in docs/test-vectors/hostile.json (HostileVectorTests).
@Suite("Strict JSON reader")
struct JSONReaderTests {
    func read(_ text: String, _ limits: JSONLimits = .signedDocument) throws -> JSONDocument {
        try JSONReader.readObject(Array(text.utf8), limits: limits)
    }

    @Test("JSON output escapes characters that show as nothing (a surrogate pair above U+FFFF); readers get the same value")
    func jsonOutputEscapesInvisible() throws {
        let actor = "ad\u{200B}min\u{E0041}\u{00AD}\"x"
        let quoted = OutputEscaping.jsonQuoted(actor)
        #expect(quoted == #""ad\u200bmin\udb40\udc41\u00ad\"x""#)
        let document = try JSONReader.readObject(Array("{\"actor\":\(quoted)}".utf8), limits: .signedDocument)
        #expect(document.members["actor"]?.text == actor)
        #expect(OutputEscaping.jsonQuoted("plain é") == "\"plain é\"")
    }

    @Test("an object with many keys: every key read, a duplicate found however far apart, escaped or not, and inner objects keep their own keys")
    func manyKeys() throws {
        func error(_ text: String) -> String? {
            do {
                _ = try read(text)
                return nil
            } catch {
                return "\(error)"
            }
        }
        let keys = (0..<5_000).map { "\"k\($0)\":\($0)" }
        let object = try read("{" + keys.joined(separator: ",") + ",\"inner\":{\"k1\":1,\"k2\":2}}").members
        #expect(object.storage.count == 5_001 && object["k4999"]?.integer == 4_999)
        let prefix = "{" + keys.joined(separator: ",") + ","
        #expect(error(prefix + "\"k7\":0}") == "invalid JSON at byte \(prefix.utf8.count): duplicate key \"k7\"")
        // The duplicate written with an escape, and an escaped key repeated plainly.
        #expect(error(prefix + "\"\\u006b4321\":0}") == "invalid JSON at byte \(prefix.utf8.count): duplicate key \"k4321\"")
        let escaped = "{\"\\u006bx\":0," + keys.joined(separator: ",") + ","
        #expect(error(escaped + "\"kx\":0}") == "invalid JSON at byte \(escaped.utf8.count): duplicate key \"kx\"")
        // An inner object's key equal to an outer one is no duplicate; one repeated inside is.
        let nested = "{" + keys.joined(separator: ",") + ",\"inner\":{" + keys.prefix(40).joined(separator: ",") + ","
        #expect(try read("{" + keys.joined(separator: ",") + ",\"inner\":{" + keys.prefix(40).joined(separator: ",") + "}}").members.storage.count == 5_001)
        #expect(error(nested + "\"k39\":1}}") == "invalid JSON at byte \(nested.utf8.count): duplicate key \"k39\"")
    }

    @Test("integer tokens are integers; 1.0, 1e0 and -0 are not; escapes and pairs are decoded")
    func values() throws {
        let d = try read(#"{"i":-42,"max":9223372036854775807,"f":1.0,"e":1e0,"z":-0,"b":true,"s":"\u00e9\ud83d\ude00\n\/","n":null}"#).members
        #expect(d["i"]?.integer == -42)
        #expect(d["max"]?.integer == Int64.max)
        for name in ["f", "e", "z", "b", "s", "n"] { #expect(d[name]?.integer == nil, "\(name)") }
        if case .double(let z)? = d["z"] { #expect(z == 0 && z.sign == .minus) } else { Issue.record("-0 is not a double") }
        #expect(d["s"]?.text == "é😀\n/")
        #expect(d["b"]?.isTrue == true && d["n"]?.isNull == true)
    }

    @Test("a top-level array (a v2 entry line): read by the same rules, an object or trailing text refused at its byte")
    func topLevelArray() throws {
        func array(_ text: String) -> Result<[JSON], JSONError> {
            Array(text.utf8).withUnsafeBufferPointer { b in Result { () throws(JSONError) in try JSONReader.readArray(b, limits: .bundleEntry) } }
        }
        let elements = try array(#" [1,null,"a",[2,"b"],{"withheld":"c"}] "#).get()
        #expect(elements.count == 5 && elements[0].integer == 1 && elements[1].isNull && elements[2].text == "a")
        #expect(elements[3].elements?.count == 2 && elements[4].object?["withheld"]?.text == "c")
        func error(_ text: String) -> String? {
            if case .failure(let e) = array(text) { return e.description } else { return nil }
        }
        #expect(error(#"{"seq":1}"#) == "invalid JSON at byte 0: expected a JSON array ([...])")
        #expect(error("[1] [2]") == "invalid JSON at byte 4: unexpected text after the array")
        #expect(error("[1,1,]") == "invalid JSON at byte 5: expected a value")
        #expect(error(#"[{"a":1,"a":2}]"#) == "invalid JSON at byte 8: duplicate key \"a\"")
        #expect(error("[" + String(repeating: "[", count: 64) + String(repeating: "]", count: 65)) == "invalid JSON at byte 64: nested deeper than 64 levels")
    }

    @Test("keys are compared by their scalars: K and the Kelvin sign are two keys, and neither finds the other")
    func exactKeys() throws {
        let o = try read(#"{"K":1,"\u212a":2,"publicKey":3}"#).members
        #expect(o["K"]?.integer == 1)
        #expect(o["\u{212A}"]?.integer == 2)
        #expect(o["public\u{212A}ey"] == nil)  // Swift's == would have found "publicKey"
        #expect(o.sortedKeys == ["K", "publicKey", "\u{212A}"])
        #expect(o.firstKey(notIn: ["K", "publicKey"]) == "\u{212A}")
    }

    @Test("an error names its byte and the top-level member it lies in; a value's raw range is kept")
    func errorsAndRanges() throws {
        #expect(throws: JSONError.self) { try read(#"{"details":{"a":1,"a":2}}"#) }
        do throws(JSONError) {
            _ = try JSONReader.readObject(Array(#"{"details":{"a":1,"a":2}}"#.utf8), limits: .eventLine)
        } catch {
            #expect(error.member == "details")
            #expect(error.description == #"invalid JSON at byte 18: duplicate key "a""#)
        }
        let text = #"{"a": [1, 2] , "details":{ "z":1 }}"#
        let doc = try read(text)
        let range = try #require(doc.valueRanges[JSONObject.Key("details")])
        #expect(String(decoding: Array(text.utf8)[range], as: UTF8.self) == #"{ "z":1 }"#)
    }

    @Test("AuditEvent(jsonLine:) keeps details byte for byte and reports a too-deep details in its own terms")
    func eventLines() throws {
        let event = try AuditEvent(jsonLine: #"{"actor":"a","action":"x","details":{ "b" : [1.50, -0] }}"#)
        #expect(try event.details?.jsonText() == #"{ "b" : [1.50, -0] }"#)
        let deep = #"{"actor":"a","action":"x","details":"# + String(repeating: #"{"a":"#, count: 33) + "1" + String(repeating: "}", count: 34)
        #expect { try AuditEvent(jsonLine: deep) } throws: { error in
            let e = error as? AuditError
            return e?.field == "details" && e?.message.hasSuffix("nested deeper than 32 levels") == true
        }
        #expect { try AuditEvent(jsonLine: [0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D]) } throws: { error in
            (error as? AuditError)?.message == "line: invalid JSON at byte 2: invalid UTF-8"
        }
    }

    @Test("a shallow read checks nested values by every rule but keeps only their kind and their text")
    func shallowRead() throws {
        func shallow(_ text: String) throws(JSONError) -> JSONDocument {
            var bytes = Array(text.utf8)
            let result: Result<JSONDocument, JSONError> = bytes.withUnsafeMutableBufferPointer { buffer in
                Result { () throws(JSONError) in try JSONReader.readObject(UnsafeBufferPointer(buffer), limits: .eventLine, shallow: true) }
            }
            return try result.get()
        }
        let text = #"{"actor":"a","details":{"k":[1,{"x":"y"}],"n":2},"list":[1,2]}"#
        let document = try shallow(text)
        if case .string(let actor)? = document.members["actor"] { #expect(actor == "a") } else { Issue.record("actor is not a string") }
        guard case .object(let details)? = document.members["details"] else {
            Issue.record("details is not an object: \(String(describing: document.members["details"]))")
            return
        }
        #expect(details.storage.isEmpty)
        #expect(document.members["list"]?.elements?.isEmpty == true)
        let range = try #require(document.valueRanges[JSONObject.Key("details")])
        #expect(String(decoding: Array(text.utf8)[range], as: UTF8.self) == #"{"k":[1,{"x":"y"}],"n":2}"#)
        // Nested problems are still found, at the same byte as a full read finds them.
        for bad in [#"{"details":{"a":1,"a":2}}"#, #"{"details":{"a":[1,01]}}"#, #"{"details":{"a":"\ud800"}}"#] {
            var full: JSONError?, partial: JSONError?
            do { _ = try read(bad, .eventLine) } catch let error as JSONError { full = error }
            do throws(JSONError) { _ = try shallow(bad) } catch { partial = error }
            #expect(full != nil && full?.description == partial?.description, "\(bad): \(String(describing: full)) vs \(String(describing: partial))")
        }
    }
}
