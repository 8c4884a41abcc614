import Crypto
import Foundation
import PatronCore

public struct ProgramVersionInfo: Codable, Sendable, Equatable {
    public var program: String
    public var version: Int
    public var effectiveFrom: Timestamp
    public var createdAt: Timestamp
    /// The validated form the engine runs.
    public var definition: ProgramDefinition
    /// The document as it was applied (YAML read as JSON): what to edit and apply again.
    public var document: JSONValue
}

public enum Scope: String, Codable, Sendable, CaseIterable {
    /// Read members, ledgers and the program.
    case read
    /// Register and update members, record events.
    case write
    /// Change the program and manage keys.
    case admin
}

public struct APIKey: Sendable, Equatable {
    public var keyId: String
    public var program: String
    public var scopes: Set<Scope>
    public var name: String
}

extension Store {
    // MARK: programs

    /// Stores a validated definition as the program's next version, in force from `effectiveFrom`
    /// (default: now). A definition equal to the latest version stores nothing. A version cannot
    /// take effect before the latest one does: history is not rewritten by a new version.
    public func applyProgram(_ def: ProgramDefinition, document: JSONValue? = nil, effectiveFrom: Timestamp? = nil, now: Timestamp) async throws -> (info: ProgramVersionInfo, changed: Bool) {
        for _ in 0..<Self.maxAttempts {
            let rows = try await versionRows(def.key)
            let latest = rows.max { ($0.effectiveFrom, $0.version) < ($1.effectiveFrom, $1.version) }
            if let latest = rows.last, latest.definition == def, effectiveFrom == nil { return (latest, false) }
            let version = (rows.last?.version ?? 0) + 1
            let from = effectiveFrom ?? now
            if let latest, from < latest.effectiveFrom {
                throw StoreError.invalid([FieldError(path: "effectiveFrom", reason: "is before version \(latest.version)'s \(latest.effectiveFrom); a new version takes effect at or after the latest one")])
            }
            let doc = document ?? (try? JSONDecoder().decode(JSONValue.self, from: Coding.encoder.encode(def))) ?? .null
            var plan = WritePlan()
            plan.add("INSERT INTO programs (program_id, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING", [.text(def.key), .int(now.seconds)])
            plan.add("INSERT INTO program_versions (program_id, version, effective_from, definition, document, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                     [.text(def.key), .int(Int64(version)), .int(from.seconds), .text(Coding.json(def)), .text(Coding.json(doc)), .int(now.seconds)],
                     expectRows: 1, else: .conflict("program version"))
            seedStock(&plan, def)
            // A version may count from the past: near-next-tier counts from `from` on may change.
            plan.historyChanges(def.key, from: from)
            do {
                try await db.write(plan)
                programs.forget(def.key)
                return (ProgramVersionInfo(program: def.key, version: version, effectiveFrom: from, createdAt: now, definition: def, document: doc), true)
            } catch GuardFailure.conflict { continue }
        }
        throw StoreError.busy("the program is being changed by someone else; try again")
    }

    func versionRows(_ key: String) async throws -> [ProgramVersionInfo] {
        try await db.query("SELECT version, effective_from, definition, document, created_at FROM program_versions WHERE program_id = ? ORDER BY version", [.text(key)]).map {
            ProgramVersionInfo(program: key, version: Int(try $0.int("version")), effectiveFrom: Timestamp(seconds: try $0.int("effective_from")),
                               createdAt: Timestamp(seconds: try $0.int("created_at")), definition: try Coding.decode(ProgramDefinition.self, try $0.string("definition")),
                               document: try Coding.decode(JSONValue.self, try $0.string("document")))
        }
    }

    public func programVersions(_ key: String) async throws -> [ProgramVersionInfo] { try await versionRows(key) }

    /// The program's versions for the engine; throws `programNotFound`.
    public func program(_ key: String) async throws -> ProgramVersions {
        if let fresh = programs.fresh(key) { return fresh }
        let latest = try await db.query("SELECT MAX(version) AS v FROM program_versions WHERE program_id = ?", [.text(key)]).first?.intOrNil("v")
        guard let latest else { throw StoreError.programNotFound(key) }
        if let cached = programs.get(key, latest: latest) { return cached }
        let rows = try await versionRows(key)
        guard !rows.isEmpty else { throw StoreError.programNotFound(key) }
        let v = ProgramVersions(rows.map { .init(version: $0.version, effectiveFrom: $0.effectiveFrom, definition: $0.definition) })
        programs.put(key, latest: latest, v)
        return v
    }

    public func programKeys() async throws -> [String] {
        try await db.query("SELECT program_id FROM programs ORDER BY program_id", []).map { try $0.string("program_id") }
    }

    // MARK: API keys

    /// Creates a key for one program. The secret is shown once; only its hash is stored.
    public func createKey(program: String, name: String, scopes: Set<Scope>, now: Timestamp) async throws -> (key: APIKey, token: String) {
        _ = try await self.program(program)
        var rng = SystemRandomNumberGenerator()
        func hex(_ bytes: Int) -> String { (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &rng)) }.joined() }
        let keyId = hex(6), secret = hex(24)
        let scopeText = scopes.map(\.rawValue).sorted().joined(separator: " ")
        var plan = WritePlan()
        plan.add("INSERT INTO api_keys (key_id, program_id, secret_hash, scopes, name, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                 [.text(keyId), .text(program), .text(Store.hash(secret)), .text(scopeText), .text(name), .int(now.seconds)])
        try await db.write(plan)
        return (APIKey(keyId: keyId, program: program, scopes: scopes, name: name), "ptk_\(keyId)_\(secret)")
    }

    /// The key a bearer token stands for, or nil (unknown, revoked or malformed).
    public func authenticate(token: String) async throws -> APIKey? {
        if let k = keys.get(token) { return k }
        let parts = token.split(separator: "_")
        guard parts.count == 3, parts[0] == "ptk", parts[1].count == 12, parts[2].count == 48 else { return nil }
        let rows = try await db.query("SELECT program_id, secret_hash, scopes, name FROM api_keys WHERE key_id = ? AND revoked_at IS NULL", [.text(String(parts[1]))])
        guard let r = rows.first else { return nil }
        // Constant-time comparison of the hashes.
        let want = Array(try r.string("secret_hash").utf8), got = Array(Store.hash(String(parts[2])).utf8)
        guard want.count == got.count, zip(want, got).reduce(UInt8(0), { $0 | ($1.0 ^ $1.1) }) == 0 else { return nil }
        let scopes = Set(try r.string("scopes").split(separator: " ").compactMap { Scope(rawValue: String($0)) })
        let key = APIKey(keyId: String(parts[1]), program: try r.string("program_id"), scopes: scopes, name: try r.string("name"))
        keys.put(token, key)
        return key
    }

    public func revokeKey(_ keyId: String, now: Timestamp) async throws -> Bool {
        var plan = WritePlan()
        plan.add("UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL", [.int(now.seconds), .text(keyId)], expectRows: 1, else: .missing("key"))
        do { try await db.write(plan); keys.forget(keyId: keyId); return true } catch GuardFailure.missing { return false }
    }
}
