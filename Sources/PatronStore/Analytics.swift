import Foundation
import PatronCore

extension Store {
    /// A program's orders as a purchase log for the customer-base models: one transaction per
    /// order, on its local date in the program's time zone, for the amount paid (refunds are not
    /// taken off). Members are named by their ids.
    public func purchaseLog(program: String) async throws -> [Transaction] {
        let clock = try await self.program(program).latest.clock
        return try await db.query("SELECT member_id, paid_at, amount_minor FROM orders WHERE program_id = ? ORDER BY member_id, paid_at",
                                  [.text(program)]).map { r in
            Transaction(memberId: String(try r.int("member_id")), day: clock.date(Timestamp(seconds: try r.int("paid_at"))), amountMinor: try r.int("amount_minor"))
        }
    }
}
