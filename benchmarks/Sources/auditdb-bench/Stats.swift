import Foundation

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
    var microseconds: Double { seconds * 1e6 }
}

func timed<T>(_ body: () throws -> T) rethrows -> (T, Double) {
    let clock = ContinuousClock()
    let start = clock.now
    let value = try body()
    return (value, (clock.now - start).seconds)
}

func timedAsync<T>(_ body: () async throws -> T) async rethrows -> (T, Double) {
    let clock = ContinuousClock()
    let start = clock.now
    let value = try await body()
    return (value, (clock.now - start).seconds)
}

/// min / median / max of a sample (median of an even count = mean of the middle two).
struct Summary: CustomStringConvertible {
    let min: Double, median: Double, max: Double, count: Int

    init(_ values: [Double]) {
        precondition(!values.isEmpty)
        let s = values.sorted()
        count = s.count
        min = s.first!
        max = s.last!
        median = s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    var description: String { "\(min) / \(median) / \(max)" }
}

/// Nearest-rank percentile (p in 0...100) of an unsorted sample.
func percentile(_ values: [Double], _ p: Double) -> Double {
    let s = values.sorted()
    let rank = Int((p / 100 * Double(s.count)).rounded(.up))
    return s[Swift.max(0, Swift.min(s.count - 1, rank - 1))]
}

enum Fmt {
    /// 1234567 -> "1,234,567"
    /// A value that is not finite (a rate over no rows) prints as "n/a" rather than trapping.
    static func int(_ v: Double) -> String {
        guard v.isFinite else { return "n/a" }
        let n = Int(v.rounded())
        let digits = String(abs(n))
        var out = ""
        for (i, c) in digits.reversed().enumerated() {
            if i > 0 && i % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return (n < 0 ? "-" : "") + String(out.reversed())
    }

    static func fixed(_ v: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", v) }

    static func pct(_ v: Double) -> String { String(format: "%.1f%%", v * 100) }

    static func x(_ v: Double) -> String { String(format: "%.2fx", v) }

    static func mmm(_ s: Summary, _ f: (Double) -> String) -> String { "\(f(s.min)) / \(f(s.median)) / \(f(s.max))" }
}

/// Prints progress to stderr so stdout holds only the report.
func progress(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
