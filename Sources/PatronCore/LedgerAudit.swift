import Foundation

/// Checks that a member's stored entries and state agree: every balance is the sum of its entries.
public enum LedgerAudit {
    public struct Problem: Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// `entries` are all the member's ledger entries; `lots` every lot ever created, with its
    /// current remaining points (closed lots at 0).
    public static func check(state: MemberState, entries: [LedgerEntry], lots: [Lot]) -> [Problem] {
        var problems: [Problem] = []
        let points = entries.filter { $0.account == .points }
        let balance = points.reduce(0) { $0 + $1.points }
        if balance != state.balance { problems.append(.init(description: "balance \(state.balance) != sum of entries \(balance)")) }
        var byLot: [Int: Int64] = [:]
        for e in points { if let l = e.lotNo { byLot[l, default: 0] += e.points } }
        for lot in lots {
            if lot.remaining < 0 { problems.append(.init(description: "lot \(lot.no) is below zero (\(lot.remaining))")) }
            if lot.remaining > lot.original { problems.append(.init(description: "lot \(lot.no) holds more than it earned")) }
            if byLot[lot.no, default: 0] != lot.remaining {
                problems.append(.init(description: "lot \(lot.no): remaining \(lot.remaining) != sum of its entries \(byLot[lot.no, default: 0])"))
            }
        }
        let stateOpen = Dictionary(uniqueKeysWithValues: state.lots.map { ($0.no, $0.remaining) })
        for lot in lots where lot.remaining > 0 && stateOpen[lot.no] != lot.remaining {
            problems.append(.init(description: "open lot \(lot.no) disagrees with the member state"))
        }
        let unassigned = points.filter { $0.lotNo == nil }.reduce(0) { $0 + $1.points }
        if -unassigned != state.debt { problems.append(.init(description: "debt \(state.debt) != minus the entries without a lot \(-unassigned)")) }
        let recorded = entries.filter { $0.account == .debt }.reduce(0) { $0 + $1.points }
        if recorded != state.recordedDebt { problems.append(.init(description: "recorded debt \(state.recordedDebt) != sum of debt entries \(recorded)")) }
        if state.debt > 0 && state.lots.contains(where: { $0.remaining > 0 }) {
            problems.append(.init(description: "debt \(state.debt) while lots still hold points"))
        }
        return problems
    }
}
