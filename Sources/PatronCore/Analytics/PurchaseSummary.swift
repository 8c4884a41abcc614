import Foundation

/// One purchase of a member on a day, in minor currency units.
public struct Transaction: Sendable, Equatable {
    public var memberId: String
    public var day: CivilDate
    public var amountMinor: Int64
    public init(memberId: String, day: CivilDate, amountMinor: Int64) {
        self.memberId = memberId; self.day = day; self.amountMinor = amountMinor
    }
}

/// A member's purchase history up to the end of a calibration period, as the customer-base models
/// read it. Time is in weeks of 7 days; all purchases on one day count as one purchase.
public struct PurchaseSummary: Sendable, Equatable {
    public var memberId: String
    /// Repeat purchases: the days with purchases after the first one (x).
    public var frequency: Int
    /// Weeks from the first to the last purchase day (tₓ); 0 without repeat purchases.
    public var recency: Double
    /// Weeks from the first purchase day to the end of the calibration period (T).
    public var T: Double
    /// The mean amount of the repeat purchase days in major units (z̄); 0 without repeat purchases.
    public var monetaryValue: Double
    public init(memberId: String, frequency: Int, recency: Double, T: Double, monetaryValue: Double) {
        self.memberId = memberId; self.frequency = frequency; self.recency = recency; self.T = T; self.monetaryValue = monetaryValue
    }

    /// The summaries of the members with a purchase on or before `calibrationEnd`, in the order of their
    /// first appearance in `transactions`.
    ///
    /// The calibration end day is inside the period: T = (calibrationEnd − first day)/7, so a first
    /// purchase on 1997-01-01 with the end 1997-09-30 gives T = 272/7 = 38.857. Purchases of one member
    /// on one day are summed into one purchase; later purchases are ignored. This reproduces the CDNOW
    /// calibration summaries of Fader, Hardie & Lee (2005) for all 2,357 customers of the sample.
    /// `monetaryValue` is in major units: minor units over `minorUnitsPerMajor`.
    public static func summaries(of transactions: [Transaction], calibrationEnd: CivilDate, minorUnitsPerMajor: Int64 = 100) -> [PurchaseSummary] {
        let end = calibrationEnd.dayNumber
        var index: [String: Int] = [:]
        var members: [(id: String, days: [(day: Int64, amount: Int64)])] = []
        for t in transactions {
            let day = t.day.dayNumber
            guard day <= end else { continue }
            if let i = index[t.memberId] {
                members[i].days.append((day, t.amountMinor))
            } else {
                index[t.memberId] = members.count
                members.append((t.memberId, [(day, t.amountMinor)]))
            }
        }
        return members.map { m in
            let days = m.days.sorted { $0.day < $1.day }
            let first = days[0].day
            var last = first, repeatDays = 0, repeatAmount = 0.0  // exact up to 2⁵³ minor units
            for d in days where d.day != first {
                if d.day != last { repeatDays += 1; last = d.day }
                repeatAmount += Double(d.amount)
            }
            return PurchaseSummary(memberId: m.id, frequency: repeatDays, recency: Double(last - first) / 7, T: Double(end - first) / 7,
                                   monetaryValue: repeatDays == 0 ? 0 : repeatAmount / (Double(repeatDays) * Double(minorUnitsPerMajor)))
        }
    }
}
