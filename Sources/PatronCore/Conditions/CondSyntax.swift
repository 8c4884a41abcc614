import Foundation

/// Binary and unary operators. `sub` is also unary minus.
enum CondOp: String, Sendable, Hashable {
    case or = "||", and = "&&"
    case eq = "==", ne = "!=", lt = "<", le = "<=", gt = ">", ge = ">=", `in`
    case add = "+", sub = "-", mul = "*", div = "/", rem = "%"
    case not = "!"

    /// Binding strength: 2 `||`, 3 `&&`, 4 comparisons and `in`, 5 `+ -`, 6 `* / %`.
    var level: Int {
        switch self {
        case .or: 2
        case .and: 3
        case .eq, .ne, .lt, .le, .gt, .ge, .in: 4
        case .add, .sub: 5
        case .mul, .div, .rem: 6
        case .not: 7
        }
    }
}

/// The parsed source. Equality ignores positions, so `parse(print(e)) == e` can be checked.
/// A run of operators of one level (`a || b || c`, `1 + 2 - 3`) is one `chain` node, so the
/// height of the tree is its nesting, which the parser limits.
struct CondExpr: Sendable, Equatable {
    indirect enum Kind: Sendable, Equatable {
        case int(Int64), string(String), bool(Bool), null
        case ident(String)
        case list([CondExpr])
        case unary(CondOp, CondExpr)
        /// A comparison or `in` (these do not chain).
        case binary(CondOp, CondExpr, CondExpr)
        /// `first op₁ x₁ op₂ x₂ …`, left to right, all ops of one level (`||`, `&&`, `+ -`, `* / %`).
        case chain(CondExpr, [CondLink])
        case ternary(CondExpr, CondExpr, CondExpr)
        /// `target.name`
        case member(CondExpr, String)
        /// `name(args)` or `target.name(args)`
        case call(CondExpr?, String, [CondExpr])
    }
    var kind: Kind
    /// The operator, name or literal's position.
    var pos: CondPos
    /// 1 for a leaf, else 1 + the tallest child.
    let height: Int
    init(kind: Kind, pos: CondPos) {
        self.kind = kind; self.pos = pos
        let children: [CondExpr]
        switch kind {
        case .int, .string, .bool, .null, .ident: children = []
        case .list(let xs): children = xs
        case .unary(_, let x), .member(let x, _): children = [x]
        case .binary(_, let a, let b): children = [a, b]
        case .chain(let a, let links): children = [a] + links.map(\.operand)
        case .ternary(let a, let b, let c): children = [a, b, c]
        case .call(let t, _, let args): children = (t.map { [$0] } ?? []) + args
        }
        height = 1 + (children.map(\.height).max() ?? 0)
    }
    static func == (a: CondExpr, b: CondExpr) -> Bool { a.kind == b.kind }

    /// Where the expression starts in the source (its leftmost token).
    var start: CondPos {
        switch kind {
        case .binary(_, let l, _), .chain(let l, _), .ternary(let l, _, _), .member(let l, _): l.start
        case .call(let t?, _, _): t.start
        default: pos
        }
    }
    var isLiteral: Bool {
        switch kind { case .int, .string, .bool, .null: true; default: false }
    }
}

/// One `op operand` of a chain; equality ignores the position.
struct CondLink: Sendable, Equatable {
    var op: CondOp
    var pos: CondPos
    var operand: CondExpr
    static func == (a: CondLink, b: CondLink) -> Bool { a.op == b.op && a.operand == b.operand }
}

struct CondToken: Sendable {
    enum Kind: Sendable, Equatable { case int(Int64), string(String), ident(String), punct(String), end }
    var kind: Kind
    var pos: CondPos
    /// The token as a message shows it: `')'`, `'abc'`, `end of input`.
    var shown: String {
        switch kind {
        case .int(let v): "'\(v)'"
        case .string(let s): CondPrinter.quote(s)
        case .ident(let s), .punct(let s): "'\(s)'"
        case .end: "end of input"
        }
    }
}

enum CondLexer {
    static func lex(_ source: String) throws(CondError) -> [CondToken] {
        let s = Array(source.unicodeScalars)
        var out: [CondToken] = []
        var i = 0, line = 1, col = 1
        func advance() {
            if s[i] == "\n" { line += 1; col = 1 } else { col += 1 }
            i += 1
        }
        func isDigit(_ c: Unicode.Scalar) -> Bool { c >= "0" && c <= "9" }
        func isIdent(_ c: Unicode.Scalar) -> Bool { c == "_" || (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || isDigit(c) }
        while i < s.count {
            let c = s[i], pos = CondPos(line: line, column: col)
            if c == " " || c == "\t" || c == "\n" || c == "\r" { advance(); continue }
            if isDigit(c) {
                var v: Int64 = 0, tooBig = false
                while i < s.count, isDigit(s[i]) {
                    let (m, o1) = v.multipliedReportingOverflow(by: 10)
                    let (a, o2) = m.addingReportingOverflow(Int64(s[i].value - 48))
                    tooBig = tooBig || o1 || o2; v = a; advance()
                }
                if tooBig { throw CondError(.syntax, pos, "the number is too large: integers are at most 9223372036854775807") }
                if i < s.count, isIdent(s[i]) {
                    throw CondError(.syntax, CondPos(line: line, column: col),
                                    "unexpected '\(s[i])' after a number; write durations as duration('90d')")
                }
                out.append(CondToken(kind: .int(v), pos: pos)); continue
            }
            if isIdent(c) {
                var name = ""
                while i < s.count, isIdent(s[i]) { name.unicodeScalars.append(s[i]); advance() }
                out.append(CondToken(kind: .ident(name), pos: pos)); continue
            }
            if c == "'" || c == "\"" {
                advance()
                var text = ""
                while true {
                    guard i < s.count, s[i] != "\n" else { throw CondError(.syntax, pos, "unterminated string: expected a closing \(c)") }
                    let d = s[i]
                    if d == c { advance(); break }
                    if d == "\\" {
                        let escPos = CondPos(line: line, column: col)
                        advance()
                        guard i < s.count else { throw CondError(.syntax, pos, "unterminated string: expected a closing \(c)") }
                        switch s[i] {
                        case "\\": text += "\\"
                        case "'": text += "'"
                        case "\"": text += "\""
                        case "n": text += "\n"
                        case "t": text += "\t"
                        case "r": text += "\r"
                        default: throw CondError(.syntax, escPos, "unknown escape '\\\(s[i])': use \\\\, \\', \\\", \\n, \\t or \\r")
                        }
                        advance(); continue
                    }
                    text.unicodeScalars.append(d); advance()
                }
                out.append(CondToken(kind: .string(text), pos: pos)); continue
            }
            let next: Unicode.Scalar? = i + 1 < s.count ? s[i + 1] : nil
            var two = String(c); if let next { two.unicodeScalars.append(next) }
            if ["==", "!=", "<=", ">=", "&&", "||"].contains(two) {
                advance(); advance(); out.append(CondToken(kind: .punct(two), pos: pos)); continue
            }
            switch c {
            case "(", ")", "[", "]", ",", ".", "?", ":", "!", "<", ">", "+", "-", "*", "/", "%":
                advance(); out.append(CondToken(kind: .punct(String(c)), pos: pos))
            case "=": throw CondError(.syntax, pos, "unexpected '=': compare with '=='")
            case "&": throw CondError(.syntax, pos, "unexpected '&': 'and' is '&&'")
            case "|": throw CondError(.syntax, pos, "unexpected '|': 'or' is '||'")
            default: throw CondError(.syntax, pos, "unexpected character '\(c.escaped(asASCII: true))'")
            }
        }
        out.append(CondToken(kind: .end, pos: CondPos(line: line, column: col)))
        return out
    }
}

/// A recursive-descent parser with precedence climbing for the binary operators.
struct CondParser {
    static let maxSourceLength = 4_000
    static let maxDepth = 32
    static let maxNodes = 1_000

    private let tokens: [CondToken]
    private var i = 0, depth = 0, nodes = 0
    private init(tokens: [CondToken]) { self.tokens = tokens }

    static func parse(_ source: String) throws(CondError) -> CondExpr {
        let length = source.unicodeScalars.count
        guard length <= maxSourceLength else {
            throw CondError(.limit, .start, "the expression is \(length) characters long; the limit is \(maxSourceLength)")
        }
        var p = CondParser(tokens: try CondLexer.lex(source))
        let e = try p.expression()
        guard case .end = p.peek.kind else {
            throw CondError(.syntax, p.peek.pos, "expected an operator or the end of the expression, found \(p.peek.shown)")
        }
        return e
    }

    private var peek: CondToken { tokens[i] }
    private func at(_ punct: String) -> Bool { peek.kind == .punct(punct) }
    private mutating func expect(_ punct: String, _ context: String = "") throws(CondError) {
        guard at(punct) else { throw CondError(.syntax, peek.pos, "expected '\(punct)'\(context), found \(peek.shown)") }
        i += 1
    }
    private mutating func make(_ kind: CondExpr.Kind, _ pos: CondPos) throws(CondError) -> CondExpr {
        nodes += 1
        guard nodes <= Self.maxNodes else { throw CondError(.limit, pos, "the expression has more than \(Self.maxNodes) parts") }
        let e = CondExpr(kind: kind, pos: pos)
        guard e.height <= Self.maxDepth else { throw CondError(.limit, pos, "the expression nests deeper than \(Self.maxDepth) levels") }
        return e
    }
    private mutating func enter() throws(CondError) {
        depth += 1
        guard depth <= Self.maxDepth else { throw CondError(.limit, peek.pos, "the expression nests deeper than \(Self.maxDepth) levels") }
    }

    /// `binary ('?' expression ':' expression)?`
    private mutating func expression() throws(CondError) -> CondExpr {
        try enter(); defer { depth -= 1 }
        let c = try binary(CondOp.or.level)
        guard at("?") else { return c }
        let pos = peek.pos; i += 1
        let a = try expression()
        try expect(":", " in 'condition ? a : b'")
        let b = try expression()
        return try make(.ternary(c, a, b), pos)
    }

    private var binaryOp: CondOp? {
        switch peek.kind {
        case .punct(let p): CondOp(rawValue: p).flatMap { $0 == .not ? nil : $0 }
        case .ident("in"): .in
        default: nil
        }
    }

    /// Operators of `level` and tighter (precedence climbing). A run of one level becomes one
    /// chain; comparisons take one operand each side.
    private mutating func binary(_ level: Int) throws(CondError) -> CondExpr {
        var left = try unary()
        while let op = binaryOp, op.level >= level {
            if op.level == CondOp.in.level {
                let pos = peek.pos; i += 1
                left = try make(.binary(op, left, try binary(op.level + 1)), pos)
                if let next = binaryOp, next.level == op.level {
                    throw CondError(.syntax, peek.pos, "comparisons cannot be chained: join them with && or add parentheses")
                }
                continue
            }
            // `(a + b) + c` is `a + b + c`: a parenthesised chain of this level on the left joins.
            var head = left, links: [CondLink] = []
            if case .chain(let f, let l) = left.kind, l[0].op.level == op.level { head = f; links = l; nodes -= 1 }
            while let next = binaryOp, next.level == op.level {
                let pos = peek.pos; i += 1
                links.append(CondLink(op: next, pos: pos, operand: try binary(op.level + 1)))
            }
            left = try make(.chain(head, links), links[0].pos)
        }
        return left
    }

    private mutating func unary() throws(CondError) -> CondExpr {
        guard at("!") || at("-") else { return try postfix() }
        let pos = peek.pos, op: CondOp = at("!") ? .not : .sub
        i += 1
        try enter(); defer { depth -= 1 }
        return try make(.unary(op, try unary()), pos)
    }

    private mutating func postfix() throws(CondError) -> CondExpr {
        var e = try primary()
        while at(".") {
            i += 1
            guard case .ident(let name) = peek.kind else {
                throw CondError(.syntax, peek.pos, "expected a field or method name after '.', found \(peek.shown)")
            }
            let pos = peek.pos
            i += 1
            let kind: CondExpr.Kind = at("(") ? .call(e, name, try arguments()) : .member(e, name)
            e = try make(kind, pos)
        }
        return e
    }

    private mutating func arguments() throws(CondError) -> [CondExpr] {
        try expect("(")
        return try items(until: ")", " after the arguments")
    }

    /// Expressions separated by commas, up to `close`.
    private mutating func items(until close: String, _ context: String) throws(CondError) -> [CondExpr] {
        var xs: [CondExpr] = []
        if !at(close) {
            xs.append(try expression())
            while at(",") {
                i += 1
                xs.append(try expression())
            }
        }
        try expect(close, context)
        return xs
    }

    /// A literal, a name, a call `f(…)`, a list `[…]` or `(expression)`.
    private mutating func primary() throws(CondError) -> CondExpr {
        let t = peek
        i += 1
        let kind: CondExpr.Kind
        switch t.kind {
        case .int(let v): kind = .int(v)
        case .string(let s): kind = .string(s)
        case .ident("true"): kind = .bool(true)
        case .ident("false"): kind = .bool(false)
        case .ident("null"): kind = .null
        case .ident(let name) where name != "in": kind = at("(") ? .call(nil, name, try arguments()) : .ident(name)
        case .punct("["): kind = .list(try items(until: "]", " to close the list"))
        case .punct("("): return try parenthesised()
        default:
            i -= 1
            throw CondError(.syntax, t.pos, "expected a value, found \(t.shown)")
        }
        return try make(kind, t.pos)
    }

    private mutating func parenthesised() throws(CondError) -> CondExpr {
        let e = try expression()
        try expect(")")
        return e
    }
}

/// The normal form: single-quoted strings, one space around binary operators, only the
/// parentheses the precedence needs.
enum CondPrinter {
    static func print(_ e: CondExpr) -> String {
        switch e.kind {
        case .int(let v): return String(v)
        case .string(let s): return quote(s)
        case .bool(let b): return b ? "true" : "false"
        case .null: return "null"
        case .ident(let n): return n
        case .list(let xs): return "[" + xs.map(print).joined(separator: ", ") + "]"
        case .unary(let op, let x): return op.rawValue + wrap(x, 7)
        case .binary(let op, let l, let r):
            return "\(wrap(l, op.level + 1)) \(op.rawValue) \(wrap(r, op.level + 1))"
        case .chain(let first, let links):
            let p = links[0].op.level
            return links.reduce(wrap(first, p)) { "\($0) \($1.op.rawValue) \(wrap($1.operand, p + 1))" }
        case .ternary(let c, let a, let b): return "\(wrap(c, 2)) ? \(print(a)) : \(print(b))"
        case .member(let t, let n): return "\(wrap(t, 8)).\(n)"
        case .call(let t, let n, let args):
            return (t.map { wrap($0, 8) + "." } ?? "") + n + "(" + args.map(print).joined(separator: ", ") + ")"
        }
    }
    /// `e` printed, in parentheses when it binds more loosely than `level`.
    private static func wrap(_ e: CondExpr, _ level: Int) -> String {
        let own: Int
        switch e.kind {
        case .ternary: own = 1
        case .binary(let op, _, _): own = op.level
        case .chain(_, let links): own = links[0].op.level
        case .unary: own = 7
        default: own = 9
        }
        return own < level ? "(\(print(e)))" : print(e)
    }
    static func quote(_ s: String) -> String {
        var out = "'"
        for c in s.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "'": out += "\\'"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default: out.unicodeScalars.append(c)
            }
        }
        return out + "'"
    }
}
