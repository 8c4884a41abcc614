import Foundation
import PatronCore
@testable import PatronServer
import PatronStore
import Testing

@Suite struct ImportFormatTests {
    @Test func ordersCSVGroupsLinesAndReportsBadRowsByLine() {
        let csv = """
        order_id,member,occurred_at,sku,category,quantity,amount_minor,discount_minor,channel,store
        A1,phone:+86 138-0000-0001,2026-11-01T10:00:00+08:00,tee,apparel,2,19900,900,store,sh-01
        A1,phone:+8613800000001,2026-11-01T10:00:00+08:00,"cap, red",accessories,1,5900,,store,sh-01
        A2,id:42,2026-11-02T10:00:00+08:00,sock,,,1000,0,app,
        A3,fax:123,2026-11-02T10:00:00+08:00,x,,1,100,0,,
        A4,card:C1,yesterday,x,,1,100,0,,
        A5,card:C1,2026-11-02T10:00:00+08:00,x,,one,100,0,,
        A1,card:OTHER,2026-11-01T10:00:00+08:00,x,,1,100,0,,
        """
        let p = OrderCSV.parse(csv)
        #expect(p.orders.map(\.order.orderId) == ["A1", "A2"])
        #expect(p.orders[0].order.lines.map(\.sku) == ["tee", "cap, red"])
        #expect(p.orders[0].order.lines[1].discountMinor == 0)
        #expect(p.orders[0].order.lines[0].quantity == 2)
        #expect(p.orders[1].who == .member(MemberID(42)))
        #expect(p.orders[1].order.lines[0].quantity == 1)
        #expect(p.rejected.map(\.line) == [5, 6, 7, 8])
        #expect(p.rejected[0].reason.contains("fax"))
        #expect(p.rejected[1].reason.contains("occurred_at"))
        #expect(p.rejected[2].reason.contains("quantity"))
        #expect(p.rejected[3].reason.contains("another member"))
    }

    @Test func aRowMayNameSeveralIdentities() {
        let p = OrderCSV.parse("""
            order_id,member,occurred_at,sku,amount_minor
            B1,phone:+86 138-0000-0001 | card:C1,2026-11-01T10:00:00+08:00,tee,100
            B2,id:4|card:C1,2026-11-01T10:00:00+08:00,tee,100
            """)
        #expect(p.orders.map(\.who) == [.identities([Identity(kind: .phone, value: "+86 138-0000-0001").normalized, Identity(kind: .card, value: "C1").normalized])])
        #expect(p.rejected.map(\.line) == [3] && p.rejected[0].reason.contains("cannot be combined"))
    }

    @Test func aHeaderWithoutRequiredColumnsIsRejected() {
        let p = OrderCSV.parse("order,who\n1,2\n")
        #expect(p.orders.isEmpty)
        #expect(p.rejected.first?.line == 1)
        #expect(p.rejected.first?.reason.contains("order_id") == true)
    }

    @Test func cdnowRowsBecomeStoreOrdersEndingOnTheGivenDay() {
        let text = " customer_id  date number_of_cds  dollar_value\r\n 00001 19970101  1   11.77\r\n 00002 19970112  5   77.00\r\n 00002 19980630  2   20.76\r\n"
        let clock = ProgramClock(timeZone: TimeZone(identifier: "Asia/Shanghai")!)
        let orders = Demo.cdnowOrders(text: text, today: CivilDate(year: 2026, month: 11, day: 21), clock: clock)
        #expect(orders.count == 3)
        #expect(orders.map { $0.order.lines[0].amountMinor } == [1177, 7700, 2076])
        #expect(orders.map { $0.order.lines[0].quantity } == [1, 5, 2])
        #expect(clock.date(orders[2].occurredAt) == CivilDate(year: 2026, month: 11, day: 21))
        // 1997-01-01 is 545 days before 1998-06-30.
        #expect(clock.date(orders[0].occurredAt) == CivilDate(dayNumber: CivilDate(year: 2026, month: 11, day: 21).dayNumber - 545))
        #expect(orders[1].who == .identity(Identity(kind: .card, value: "CDNOW-00002")))
    }

    @Test func theGeneratedHistoryIsReproducible() {
        let clock = ProgramClock(timeZone: TimeZone(identifier: "Asia/Shanghai")!)
        let a = Demo.generatedOrders(members: 50, today: CivilDate(year: 2026, month: 11, day: 21), clock: clock)
        let b = Demo.generatedOrders(members: 50, today: CivilDate(year: 2026, month: 11, day: 21), clock: clock)
        #expect(a.map(\.order) == b.map(\.order))
        #expect(Set(a.map(\.order.orderId)).count == a.count)
        #expect(a.allSatisfy { clock.date($0.occurredAt) <= CivilDate(year: 2026, month: 11, day: 21) })
    }
}
