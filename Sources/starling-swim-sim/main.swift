import StarlingMembership
import StarlingMembershipSim

// Figures for docs/benchmarks.md ("Membership") from the deterministic simulator. Every number is a pure
// function of the arguments: rerun the printed command to get the same table.
//
//   starling-swim-sim detection [--nodes 5,10,100,1000] [--runs 10] [--profile lan] [--seed 1]
//   starling-swim-sim false-positives [--nodes 50] [--loss 0.1] [--minutes 10] [--runs 3] [--seed 1]
//   starling-swim-sim dissemination [--nodes 100,1000] [--runs 5] [--seed 1]

var args = Array(CommandLine.arguments.dropFirst())
let command = args.isEmpty ? "help" : args.removeFirst()
var parsed: [String: String] = [:]
while let a = args.first, a.hasPrefix("--") {
    args.removeFirst()
    parsed[String(a.dropFirst(2))] = args.isEmpty ? "" : args.removeFirst()
}
let options = parsed

func ints(_ key: String, _ def: [Int]) -> [Int] {
    options[key].map { $0.split(separator: ",").compactMap { Int($0) } } ?? def
}
func int(_ key: String, _ def: Int) -> Int { options[key].flatMap { Int($0) } ?? def }
func double(_ key: String, _ def: Double) -> Double { options[key].flatMap { Double($0) } ?? def }
let profileName = options["profile"] ?? "lan"
guard let settings = SWIMSettings.profile(named: profileName) else {
    print("unknown profile \(profileName); known: \(SWIMSettings.profileNames.joined(separator: ", "))")
    exit(2)
}
let baseSeed = UInt64(options["seed"] ?? "1") ?? 1

func fmt(_ ms: Int64?) -> String { ms.map { String(format1(Double($0) / 1000)) + " s" } ?? "never" }
func format1(_ x: Double) -> String {
    let r = (x * 10).rounded() / 10
    return String(r)
}
func percentile(_ xs: [Int64], _ p: Double) -> Int64? {
    guard !xs.isEmpty else { return nil }
    let s = xs.sorted()
    return s[min(s.count - 1, Int((Double(s.count - 1) * p).rounded()))]
}

switch command {
case "detection":
    let runs = int("runs", 10)
    print("Detection of a killed member, profile \(profileName), \(runs) runs per n (seeds \(baseSeed)..<\(baseSeed + UInt64(runs)))")
    print("")
    print("| n | first suspicion (median / p95 / max) | suspected by all (median / p95 / max) | dead everywhere (median / p95 / max) | false deaths |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for n in ints("nodes", [3, 5, 10, 100, 1000]) {
        var first: [Int64] = [], all: [Int64] = [], dead: [Int64] = []
        var falseDeaths = 0, undetected = 0
        for r in 0..<runs {
            let f = Figures.detection(nodeCount: n, seed: baseSeed + UInt64(r), settings: settings)
            if let x = f.firstSuspectMs { first.append(x) }
            if let x = f.suspectedByAllMs { all.append(x) }
            if let x = f.deadEverywhereMs { dead.append(x) } else { undetected += 1 }
            falseDeaths += f.falseDeaths
        }
        func dist(_ xs: [Int64]) -> String { "\(fmt(percentile(xs, 0.5))) / \(fmt(percentile(xs, 0.95))) / \(fmt(xs.max()))" }
        print("| \(n) | \(dist(first)) | \(dist(all)) | \(dist(dead))\(undetected > 0 ? " (\(undetected) undetected)" : "") | \(falseDeaths) |")
    }
case "false-positives":
    let runs = int("runs", 3)
    let loss = double("loss", 0.1)
    let minutes = int("minutes", 10)
    print("False positives, profile \(profileName), \(Int(loss * 100))% loss each way, \(minutes) simulated minutes")
    print("")
    print("| n | seed | false deaths | suspicions started | self refutations | refutations observed | probes failed / sent |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in ints("nodes", [50]) {
        for r in 0..<runs {
            let seed = baseSeed + UInt64(r)
            let f = Figures.falsePositives(nodeCount: n, seed: seed, lossRate: loss, durationMs: Int64(minutes) * 60_000, settings: settings)
            print("| \(n) | \(seed) | \(f.falseDeaths) | \(f.suspicionsStarted) | \(f.selfRefutations) | \(f.refutationsObserved) | \(f.probesFailed) / \(f.probesSent) |")
        }
    }
case "dissemination":
    let runs = int("runs", 5)
    print("Dissemination of one update (metadata change), profile \(profileName), \(runs) runs per n")
    print("")
    print("| n | time to all (median / max) | gossip rounds (median) | transmissions (median) | update bytes per node | all bytes per node in window | retransmit limit |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in ints("nodes", [100, 1000]) {
        var ms: [Int64] = [], tx: [Int64] = []
        var ub = 0.0, tb = 0.0, limit = 0, failures = 0
        for r in 0..<runs {
            let d = Figures.dissemination(nodeCount: n, seed: baseSeed + UInt64(r), settings: settings)
            if let x = d.msToAll { ms.append(x) } else { failures += 1 }
            tx.append(Int64(d.transmissions))
            ub += d.updateBytesPerNode
            tb += d.totalBytesPerNode
            limit = d.retransmitLimit
        }
        let med = percentile(ms, 0.5)
        let rounds = med.map { format1(Double($0) / Double(settings.gossipIntervalMs)) } ?? "-"
        print("| \(n) | \(fmt(med)) / \(fmt(ms.max()))\(failures > 0 ? " (\(failures) incomplete)" : "") | \(rounds) | \(percentile(tx, 0.5) ?? 0) | "
            + "\(format1(ub / Double(runs))) B | \(format1(tb / Double(runs))) B | \(limit) |")
    }
default:
    print("""
    usage: starling-swim-sim detection [--nodes 3,5,10,100,1000] [--runs 10] [--profile lan|local-test] [--seed 1]
           starling-swim-sim false-positives [--nodes 50] [--loss 0.1] [--minutes 10] [--runs 3] [--seed 1]
           starling-swim-sim dissemination [--nodes 100,1000] [--runs 5] [--seed 1]
    """)
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
