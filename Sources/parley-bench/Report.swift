import Foundation
import Histogram
import ParleyCore

/// What a run prints: a table for people and one JSON line for machines.
struct Report {
    let scenario: String
    private(set) var rows: [(String, String)] = []
    private(set) var json: [String: JSONValue] = [:]

    init(scenario: String) {
        self.scenario = scenario
        json["scenario"] = .string(scenario)
    }

    mutating func add(_ label: String, _ key: String, _ value: Double, unit: String = "", digits: Int = 0) {
        rows.append((label, String(format: "%.\(digits)f", value) + (unit.isEmpty ? "" : " \(unit)")))
        json[key] = value.isFinite ? .double((value * 1000).rounded() / 1000) : .null
    }

    mutating func add(_ label: String, _ key: String, _ value: Int) {
        rows.append((label, String(value)))
        json[key] = .int(Int64(value))
    }

    mutating func add(_ label: String, _ key: String, text: String) {
        rows.append((label, text))
        json[key] = .string(text)
    }

    /// A value for the JSON line only.
    mutating func attach(_ key: String, _ value: JSONValue) { json[key] = value }

    /// p50 / p99 / p99.9 / max of a latency histogram, in milliseconds.
    mutating func latency(_ label: String, _ key: String, _ histogram: Histogram<UInt64>) {
        guard histogram.totalCount > 0 else {
            add(label, key, text: "no samples")
            return
        }
        let ms = { (nanos: UInt64) in Double(nanos) / 1e6 }
        let p50 = ms(histogram.valueAtPercentile(50)), p99 = ms(histogram.valueAtPercentile(99))
        let p999 = ms(histogram.valueAtPercentile(99.9)), top = ms(histogram.max)
        rows.append((label, String(format: "p50 %.2f  p99 %.2f  p99.9 %.2f  max %.2f ms", p50, p99, p999, top)))
        json[key] = ["p50_ms": .double(p50), "p99_ms": .double(p99), "p999_ms": .double(p999), "max_ms": .double(top),
                     "samples": .int(Int64(histogram.totalCount))]
    }

    func print() {
        let width = rows.map(\.0.count).max() ?? 0
        Swift.print("\n== \(scenario) ==")
        for (label, value) in rows { Swift.print(label.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + value) }
        Swift.print(JSONValue.object(json).jsonText)
    }
}

/// Opens `count` things `concurrency` at a time.
func inBatches<T: Sendable>(_ count: Int, concurrency: Int = 100, _ open: @escaping @Sendable (Int) async throws -> T) async throws -> [T] {
    var results: [T] = []
    results.reserveCapacity(count)
    var start = 0
    while start < count {
        let end = min(count, start + concurrency)
        let batch = try await withThrowingTaskGroup(of: (Int, T).self) { group in
            for n in start..<end { group.addTask { (n, try await open(n)) } }
            return try await group.reduce(into: [(Int, T)]()) { $0.append($1) }.sorted { $0.0 < $1.0 }.map(\.1)
        }
        results += batch
        start = end
    }
    return results
}

/// Sleeps until `deadline` (monotonic nanoseconds).
func sleep(untilNanos deadline: UInt64) async throws {
    let now = nowNanos()
    if deadline > now { try await Task.sleep(nanoseconds: deadline - now) }
}
