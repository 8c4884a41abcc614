import Foundation

/// The channels a member can be known by.
public enum IdentityKind: String, Codable, Sendable, CaseIterable {
    case phone, email, card, app, wechat, storeCustomer = "store_customer"
}

public struct Identity: Codable, Sendable, Hashable {
    public var kind: IdentityKind
    public var value: String
    public init(kind: IdentityKind, value: String) { self.kind = kind; self.value = value }

    /// The stored form: phone numbers without spaces or dashes, e-mail in lower case.
    public var normalized: Identity {
        switch kind {
        case .phone: return Identity(kind: kind, value: value.filter { !" -()".contains($0) })
        case .email: return Identity(kind: kind, value: value.lowercased().trimmingCharacters(in: .whitespaces))
        default: return Identity(kind: kind, value: value.trimmingCharacters(in: .whitespaces))
        }
    }
    public func validate(path: String) -> [FieldError] {
        let v = normalized.value
        if v.isEmpty { return [FieldError(path: "\(path).value", reason: "must not be empty")] }
        if v.count > 128 { return [FieldError(path: "\(path).value", reason: "is longer than 128 characters")] }
        switch kind {
        case .phone:
            let digits = v.hasPrefix("+") ? v.dropFirst() : Substring(v)
            if digits.count < 5 || digits.count > 15 || !digits.allSatisfy(\.isASCII) || !digits.allSatisfy(\.isNumber) {
                return [FieldError(path: "\(path).value", reason: "'\(value)' is not a phone number: use 5 to 15 digits, optionally after '+'")]
            }
        case .email:
            let parts = v.split(separator: "@", omittingEmptySubsequences: false)
            if parts.count != 2 || parts[0].isEmpty || !parts[1].contains(".") || parts[1].hasSuffix(".") {
                return [FieldError(path: "\(path).value", reason: "'\(value)' is not an e-mail address")]
            }
        default: break
        }
        return []
    }
}

public enum Gender: String, Codable, Sendable, CaseIterable { case female, male, other, unknown }

public struct MemberProfile: Codable, Sendable, Equatable {
    public var name: String?
    public var gender: Gender?
    public var birthday: CivilDate?
    public var city: String?
    public var registeredChannel: String?
    public var registeredStore: String?
    public var marketingConsent: Bool?
    public init(name: String? = nil, gender: Gender? = nil, birthday: CivilDate? = nil, city: String? = nil,
                registeredChannel: String? = nil, registeredStore: String? = nil, marketingConsent: Bool? = nil) {
        self.name = name; self.gender = gender; self.birthday = birthday; self.city = city
        self.registeredChannel = registeredChannel; self.registeredStore = registeredStore; self.marketingConsent = marketingConsent
    }
    public func validate(path: String, today: CivilDate) -> [FieldError] {
        var e: [FieldError] = []
        func len(_ s: String?, _ f: String, _ m: Int) {
            if let s, s.count > m { e.append(FieldError(path: path.isEmpty ? f : "\(path).\(f)", reason: "is longer than \(m) characters")) }
            if let s, s.isEmpty { e.append(FieldError(path: path.isEmpty ? f : "\(path).\(f)", reason: "must not be empty; leave it out instead")) }
        }
        len(name, "name", 100); len(city, "city", 64); len(registeredChannel, "registeredChannel", 64); len(registeredStore, "registeredStore", 64)
        if let b = birthday, b > today || b.year < 1900 {
            e.append(FieldError(path: path.isEmpty ? "birthday" : "\(path).birthday", reason: "must be a date between 1900-01-01 and today"))
        }
        return e
    }
    /// Fields present in `patch` replace these.
    public func merged(with patch: MemberProfile) -> MemberProfile {
        MemberProfile(name: patch.name ?? name, gender: patch.gender ?? gender, birthday: patch.birthday ?? birthday, city: patch.city ?? city,
                      registeredChannel: patch.registeredChannel ?? registeredChannel, registeredStore: patch.registeredStore ?? registeredStore,
                      marketingConsent: patch.marketingConsent ?? marketingConsent)
    }
}
