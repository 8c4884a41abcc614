import Foundation

/// Members merged into one (会员合并): the survivor's history is its own events and those of the
/// members merged into it, each absorbed member's events keeping their own numbers inside a
/// slot of their own. Nothing is moved or rewritten in storage, so undoing a merge gives both
/// members back exactly as their own events make them, including events that arrived after the
/// merge for either of them.
public enum MemberMerge {
    /// One member's part of a merged history: `slot` 0 for the survivor, 1, 2, … for members
    /// merged into it (kept with the merge, never reused).
    public struct Part: Sendable {
        public var member: MemberID
        public var slot: Int64
        public var registeredAt: Timestamp
        public var events: [MemberEvent]
        public init(member: MemberID, slot: Int64, registeredAt: Timestamp, events: [MemberEvent]) {
            self.member = member; self.slot = slot; self.registeredAt = registeredAt; self.events = events
        }
    }

    /// The members one record's identities find (`found`: in the record's order of identities),
    /// as a program that merges on `mergeOn` sees them: `owners`, each once, the first being the
    /// one the record goes to; and the owners a `mergeOn` identity ties to the first (held by
    /// either side), each with the identity that proves it, to be merged into the first by rule.
    /// The other owners are only candidates for a merge.
    public static func ruleTies(_ found: [(owner: MemberID, identity: Identity)], mergeOn: [IdentityKind]) -> (owners: [MemberID], tied: [(member: MemberID, proof: Identity)]) {
        var owners: [MemberID] = [], provenBy: [MemberID: Identity] = [:]
        for (id, i) in found {
            if !owners.contains(id) { owners.append(id) }
            if mergeOn.contains(i.kind), provenBy[id] == nil { provenBy[id] = i }
        }
        guard let first = owners.first else { return ([], []) }
        let tied = owners.dropFirst().compactMap { other in (provenBy[other] ?? provenBy[first]).map { (other, $0) } }
        return (owners, tied)
    }

    /// Event numbers of one member stay below this; slots sit above it.
    public static let slotShift: Int64 = 40

    /// The id the engine gives event `id` of the member in `slot`.
    public static func virtualID(slot: Int64, _ id: EventID) -> EventID {
        slot == 0 ? id : EventID(slot << slotShift | id.rawValue)
    }

    /// The survivor's history: every part's events, with absorbed members' events renumbered
    /// into their slots (and the grants and exchanges they name with them), in no particular
    /// order (`Engine.replay` folds by time). An absorbed member's `member.profile_set` events
    /// are left out: the survivor's profile stands.
    public static func history(_ parts: [Part]) -> [MemberEvent] {
        var out: [MemberEvent] = []
        for p in parts {
            for e in p.events {
                if p.slot == 0 { out.append(e); continue }
                if case .profileSet = e.body { continue }
                out.append(MemberEvent(id: virtualID(slot: p.slot, e.id), occurredAt: e.occurredAt, body: e.body.renumbered(slot: p.slot)))
            }
        }
        return out
    }

    /// The merged member starts when the first of them registered.
    public static func registeredAt(_ parts: [Part]) -> Timestamp { parts.map(\.registeredAt).min()! }

    /// A grant id made from an event number (staff grants `st.N.k`, mall grants `ml.N.k`) moved
    /// into `slot`; other ids (upgrade gifts, allowances, birthday gifts) are the member's
    /// standing, not an event's, and stay as they are.
    public static func grantID(_ id: String, slot: Int64) -> String {
        guard slot != 0 else { return id }
        let parts = id.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "st" || parts[0] == "ml", let n = Int64(parts[1]) else { return id }
        return "\(parts[0]).\(virtualID(slot: slot, EventID(n)).rawValue).\(parts[2])"
    }
}

extension EventBody {
    /// The body with the event numbers and event-made grant ids it names moved into `slot`.
    public func renumbered(slot: Int64) -> EventBody {
        switch self {
        case .benefitClaimed(var c): c.grant = MemberMerge.grantID(c.grant, slot: slot); return .benefitClaimed(c)
        case .benefitRedeemed(var r): r.grant = MemberMerge.grantID(r.grant, slot: slot); return .benefitRedeemed(r)
        case .benefitReversed(var r): r.grant = MemberMerge.grantID(r.grant, slot: slot); return .benefitReversed(r)
        case .mallCancelled(var c): c.exchange = MemberMerge.virtualID(slot: slot, c.exchange); return .mallCancelled(c)
        default: return self
        }
    }
}
