import ArgumentParser
import Foundation
import PatronCore
import PatronServer
import PatronStore

/// `patron segments …`: preview, save, list, export and refresh segments (docs/segments.md).
struct SegmentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "segments", abstract: "Segments (人群): preview, save, list, export, keep current.",
                                                    subcommands: [Preview.self, Save.self, List.self, Export.self, Refresh.self])

    static func draft(file: String?, condition: String?, requireId: Bool) throws -> SegmentDraft {
        let doc: JSONValue
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
            doc = file.hasSuffix(".json") ? try JSONDecoder().decode(JSONValue.self, from: data) : try YAMLDocument.parse(String(decoding: data, as: UTF8.self))
        } else if let condition {
            doc = .object(["condition": .string(condition)])
        } else {
            throw ValidationError("give a segment file or --condition")
        }
        switch SegmentParser.parse(doc, requireId: requireId) {
        case .success(let d): return d
        case .failure(let f): throw ValidationError("the segment is not valid:\n" + f.errors.map { "  \($0)" }.joined(separator: "\n"))
        }
    }

    struct Preview: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Size, sample and make-up of a segment, over every member now.")
        @OptionGroup var db: DatabaseOptions
        @Option(help: "The program.") var program: String
        @Option(help: "The condition (instead of a file).") var condition: String?
        @Argument(help: "A segment document (YAML or JSON).") var file: String?
        func run() async throws {
            let d = try SegmentsCommand.draft(file: file, condition: condition, requireId: false)
            try await db.withStore { store in
                let p = try await store.previewSegment(program: program, d, now: now())
                printJSON(p)
            }
        }
    }

    struct Save: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Save a segment (new, or replacing the one with its id) and record who is in it.")
        @OptionGroup var db: DatabaseOptions
        @Option(help: "The program.") var program: String
        @Argument(help: "A segment document (YAML or JSON) with id and name.") var file: String
        func run() async throws {
            let d = try SegmentsCommand.draft(file: file, condition: nil, requireId: true)
            try await db.withStore { store in
                let (saved, created) = try await store.saveSegment(program: program, d, now: now())
                let r = try await store.refreshSegments(program: program, now: now())
                print("segment '\(saved.definition.id)' \(created ? "saved" : "replaced"); \(r.entered) entered, \(r.exited) left")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The program's saved segments.")
        @OptionGroup var db: DatabaseOptions
        @Option(help: "The program.") var program: String
        func run() async throws {
            try await db.withStore { store in
                for s in try await store.segments(program: program) {
                    print("\(s.definition.id)\t\(s.definition.name.zh) / \(s.definition.name.en)\t\(s.definition.condition ?? "")\(s.definition.members.map { "\t\($0.count) listed" } ?? "")")
                }
            }
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A saved segment's members now, as CSV (member_id, tier, points, spend, orders, last order).")
        @OptionGroup var db: DatabaseOptions
        @Option(help: "The program.") var program: String
        @Argument(help: "The segment id.") var segment: String
        func run() async throws {
            try await db.withStore { store in
                print("member_id,tier,points_balance,spent_minor,order_count,last_order_at")
                for m in try await store.segmentMembers(program: program, id: segment, now: now()) {
                    print("\(m.row.id),\(m.row.tier),\(m.row.balance),\(m.row.spentMinor),\(m.row.orderCount),\(m.row.lastOrderAt?.iso8601 ?? "")")
                }
            }
        }
    }

    struct Refresh: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Bring saved segments up to date now (the server does this every 2 seconds).")
        @OptionGroup var db: DatabaseOptions
        @Option(help: "The program.") var program: String
        func run() async throws {
            try await db.withStore { store in
                let r = try await store.refreshSegments(program: program, now: now())
                print("segments: \(r.evaluated) evaluations, \(r.entered) entered, \(r.exited) left")
            }
        }
    }
}

/// `patron members merge|unmerge`: merge two members of a program, or undo it (docs/merges.md).
struct MembersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "members", abstract: "Merge members who are one person, or undo it.",
                                                    subcommands: [Merge.self, Unmerge.self])
    struct Merge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Merge ABSORBED into SURVIVOR.")
        @OptionGroup var db: DatabaseOptions
        @Option(help: "The program.") var program: String
        @Option(help: "Who merges.") var by: String
        @Option(help: "Why.") var reason: String?
        @Argument(help: "The member who stays.") var survivor: Int64
        @Argument(help: "The member merged into them.") var absorbed: Int64
        func run() async throws {
            try await db.withStore { store in
                let m = try await store.mergeMembers(program: program, survivor: MemberID(survivor), absorbed: MemberID(absorbed), by: by, reason: reason, now: now())
                print("merge \(m.mergeId): member \(m.absorbed) merged into \(m.survivor) (undo: patron members unmerge --program \(program) --by … \(m.mergeId))")
            }
        }
    }
    struct Unmerge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Undo a merge: both members as their own events make them.")
        @OptionGroup var db: DatabaseOptions
        @Option(help: "The program.") var program: String
        @Option(help: "Who undoes it.") var by: String
        @Argument(help: "The merge id.") var merge: Int64
        func run() async throws {
            try await db.withStore { store in
                let m = try await store.unmergeMembers(program: program, mergeId: merge, by: by, now: now())
                print("merge \(m.mergeId) undone: members \(m.survivor) and \(m.absorbed) apart again")
            }
        }
    }
}
