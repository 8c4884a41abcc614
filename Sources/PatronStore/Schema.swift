import Foundation

/// The schema, as numbered migrations. One text for SQLite and PostgreSQL: integers are BIGINT,
/// JSON is TEXT, times are seconds since the epoch. Every member-keyed table leads with
/// (program_id, member_id) so it can be distributed by those columns.
public enum Schema {
    public struct Migration: Sendable {
        public var version: Int64
        public var name: String
        public var statements: [String]
    }

    public static let migrations: [Migration] = [
        Migration(version: 1, name: "spine", statements: [
            """
            CREATE TABLE programs (
              program_id TEXT PRIMARY KEY,
              created_at BIGINT NOT NULL
            )
            """,
            """
            CREATE TABLE program_versions (
              program_id TEXT NOT NULL,
              version BIGINT NOT NULL,
              effective_from BIGINT NOT NULL,
              definition TEXT NOT NULL,
              document TEXT NOT NULL,
              created_at BIGINT NOT NULL,
              PRIMARY KEY (program_id, version)
            )
            """,
            """
            CREATE TABLE api_keys (
              key_id TEXT PRIMARY KEY,
              program_id TEXT NOT NULL,
              secret_hash TEXT NOT NULL,
              scopes TEXT NOT NULL,
              name TEXT NOT NULL,
              created_at BIGINT NOT NULL,
              revoked_at BIGINT
            )
            """,
            """
            CREATE TABLE members (
              program_id TEXT NOT NULL,
              member_id BIGINT NOT NULL,
              registered_at BIGINT NOT NULL,
              name TEXT,
              profile TEXT NOT NULL,
              tier_id TEXT NOT NULL,
              balance BIGINT NOT NULL,
              points_available BIGINT NOT NULL,
              points_pending BIGINT NOT NULL,
              growth_total BIGINT NOT NULL,
              state TEXT NOT NULL,
              state_version BIGINT NOT NULL,
              last_event_no BIGINT NOT NULL,
              as_of BIGINT NOT NULL,
              next_due_at BIGINT,
              updated_at BIGINT NOT NULL,
              PRIMARY KEY (program_id, member_id)
            )
            """,
            "CREATE INDEX members_due ON members (program_id, next_due_at) WHERE next_due_at IS NOT NULL",
            "CREATE INDEX members_tier ON members (program_id, tier_id, member_id)",
            """
            CREATE TABLE identities (
              program_id TEXT NOT NULL,
              kind TEXT NOT NULL,
              value TEXT NOT NULL,
              member_id BIGINT NOT NULL,
              created_at BIGINT NOT NULL,
              PRIMARY KEY (program_id, kind, value)
            )
            """,
            "CREATE INDEX identities_member ON identities (program_id, member_id)",
            """
            CREATE TABLE events (
              program_id TEXT NOT NULL,
              member_id BIGINT NOT NULL,
              event_no BIGINT NOT NULL,
              kind TEXT NOT NULL,
              occurred_at BIGINT NOT NULL,
              recorded_at BIGINT NOT NULL,
              idempotency_key TEXT,
              payload TEXT NOT NULL,
              outcome TEXT NOT NULL,
              PRIMARY KEY (program_id, member_id, event_no)
            )
            """,
            """
            CREATE TABLE idempotency (
              program_id TEXT NOT NULL,
              idem_key TEXT NOT NULL,
              request_hash TEXT NOT NULL,
              status BIGINT NOT NULL,
              response TEXT NOT NULL,
              created_at BIGINT NOT NULL,
              PRIMARY KEY (program_id, idem_key)
            )
            """,
            """
            CREATE TABLE orders (
              program_id TEXT NOT NULL,
              order_id TEXT NOT NULL,
              member_id BIGINT NOT NULL,
              event_no BIGINT NOT NULL,
              paid_at BIGINT NOT NULL,
              amount_minor BIGINT NOT NULL,
              channel TEXT,
              store TEXT,
              record TEXT NOT NULL,
              lapsed_points BIGINT NOT NULL DEFAULT 0,
              PRIMARY KEY (program_id, order_id)
            )
            """,
            "CREATE INDEX orders_member ON orders (program_id, member_id, paid_at)",
            """
            CREATE TABLE ledger_entries (
              program_id TEXT NOT NULL,
              member_id BIGINT NOT NULL,
              entry_no BIGINT NOT NULL,
              event_no BIGINT,
              at BIGINT NOT NULL,
              account TEXT NOT NULL,
              points BIGINT NOT NULL,
              reason TEXT NOT NULL,
              lot_no BIGINT,
              order_id TEXT,
              note TEXT,
              PRIMARY KEY (program_id, member_id, entry_no)
            )
            """,
            """
            CREATE TABLE lots (
              program_id TEXT NOT NULL,
              member_id BIGINT NOT NULL,
              lot_no BIGINT NOT NULL,
              event_no BIGINT NOT NULL,
              source TEXT NOT NULL,
              order_id TEXT,
              earned_at BIGINT NOT NULL,
              available_at BIGINT NOT NULL,
              expires_at BIGINT,
              original BIGINT NOT NULL,
              remaining BIGINT NOT NULL,
              PRIMARY KEY (program_id, member_id, lot_no)
            )
            """,
            "CREATE INDEX lots_open_expiry ON lots (program_id, expires_at) WHERE remaining > 0",
            """
            CREATE TABLE growth_entries (
              program_id TEXT NOT NULL,
              member_id BIGINT NOT NULL,
              growth_no BIGINT NOT NULL,
              event_no BIGINT NOT NULL,
              at BIGINT NOT NULL,
              counts_at BIGINT NOT NULL,
              growth BIGINT NOT NULL,
              reason TEXT NOT NULL,
              order_id TEXT,
              PRIMARY KEY (program_id, member_id, growth_no)
            )
            """,
            """
            CREATE TABLE tier_changes (
              program_id TEXT NOT NULL,
              member_id BIGINT NOT NULL,
              change_no BIGINT NOT NULL,
              at BIGINT NOT NULL,
              from_tier TEXT NOT NULL,
              to_tier TEXT NOT NULL,
              cause TEXT NOT NULL,
              event_no BIGINT,
              qualifying_growth BIGINT NOT NULL,
              PRIMARY KEY (program_id, member_id, change_no)
            )
            """,
        ]),
        Migration(version: 2, name: "benefits", statements: [
            // The key of the program's write-off codes (HMAC), made when first needed.
            "ALTER TABLE programs ADD COLUMN code_secret TEXT",
            """
            CREATE TABLE benefit_grants (
              program_id TEXT NOT NULL,
              member_id BIGINT NOT NULL,
              grant_id TEXT NOT NULL,
              benefit_id TEXT NOT NULL,
              cause TEXT NOT NULL,
              tier_id TEXT,
              event_no BIGINT,
              granted_at BIGINT NOT NULL,
              claim_by BIGINT,
              claimed_at BIGINT,
              use_by BIGINT,
              code TEXT,
              used_at BIGINT,
              use_event_no BIGINT,
              order_id TEXT,
              discount_minor BIGINT,
              channel TEXT,
              store TEXT,
              refunded_at BIGINT,
              revoked_at BIGINT,
              note TEXT,
              PRIMARY KEY (program_id, member_id, grant_id)
            )
            """,
            "CREATE UNIQUE INDEX benefit_grants_code ON benefit_grants (program_id, code)",
            "CREATE INDEX benefit_grants_benefit ON benefit_grants (program_id, benefit_id, granted_at)",
            "CREATE INDEX benefit_grants_claim_by ON benefit_grants (program_id, claim_by) WHERE claimed_at IS NULL",
            "CREATE INDEX benefit_grants_use_by ON benefit_grants (program_id, use_by) WHERE used_at IS NULL",
            // Points-mall stock: one row per stocked item, decremented under a guard.
            """
            CREATE TABLE mall_stock (
              program_id TEXT NOT NULL,
              item_id TEXT NOT NULL,
              available BIGINT NOT NULL,
              exchanged BIGINT NOT NULL,
              PRIMARY KEY (program_id, item_id)
            )
            """,
            """
            CREATE TABLE mall_exchanges (
              program_id TEXT NOT NULL,
              member_id BIGINT NOT NULL,
              event_no BIGINT NOT NULL,
              item_id TEXT NOT NULL,
              kind TEXT NOT NULL,
              quantity BIGINT NOT NULL,
              points BIGINT NOT NULL,
              money_minor BIGINT NOT NULL,
              grants TEXT,
              address TEXT,
              status TEXT NOT NULL,
              tracking_no TEXT,
              created_at BIGINT NOT NULL,
              updated_at BIGINT NOT NULL,
              PRIMARY KEY (program_id, member_id, event_no)
            )
            """,
            "CREATE INDEX mall_exchanges_status ON mall_exchanges (program_id, status, created_at)",
            "CREATE INDEX mall_exchanges_item ON mall_exchanges (program_id, item_id, created_at)",
            // Tags members have now, and every change with its cause (tag.added, tag.removed).
            """
            CREATE TABLE member_tags (
              program_id TEXT NOT NULL,
              member_id BIGINT NOT NULL,
              tag_id TEXT NOT NULL,
              since BIGINT NOT NULL,
              manual BIGINT NOT NULL,
              set_by TEXT,
              PRIMARY KEY (program_id, member_id, tag_id)
            )
            """,
            "CREATE INDEX member_tags_tag ON member_tags (program_id, tag_id, member_id)",
            """
            CREATE TABLE tag_changes (
              program_id TEXT NOT NULL,
              member_id BIGINT NOT NULL,
              change_no BIGINT NOT NULL,
              tag_id TEXT NOT NULL,
              added BIGINT NOT NULL,
              at BIGINT NOT NULL,
              cause TEXT NOT NULL,
              event_no BIGINT,
              set_by TEXT,
              reason TEXT,
              PRIMARY KEY (program_id, member_id, change_no)
            )
            """,
            "CREATE INDEX tag_changes_at ON tag_changes (program_id, at)",
            // The KPIs' aggregate: what each member bought each local day, by the tier they held
            // and the channel and store; kept as orders arrive.
            """
            CREATE TABLE member_days (
              program_id TEXT NOT NULL,
              member_id BIGINT NOT NULL,
              day BIGINT NOT NULL,
              month BIGINT NOT NULL,
              tier_id TEXT NOT NULL,
              channel TEXT NOT NULL,
              store TEXT NOT NULL,
              orders BIGINT NOT NULL,
              revenue_minor BIGINT NOT NULL,
              PRIMARY KEY (program_id, member_id, day, tier_id, channel, store)
            )
            """,
            "CREATE INDEX member_days_day ON member_days (program_id, day)",
            """
            CREATE TABLE member_churn (
              program_id TEXT NOT NULL,
              member_id BIGINT NOT NULL,
              p_alive_ppm BIGINT NOT NULL,
              expected_purchases_milli BIGINT NOT NULL,
              expected_value_minor BIGINT NOT NULL,
              clv_minor BIGINT NOT NULL,
              at_risk BIGINT NOT NULL,
              fitted_at BIGINT NOT NULL,
              PRIMARY KEY (program_id, member_id)
            )
            """,
            "CREATE INDEX member_churn_risk ON member_churn (program_id, at_risk, clv_minor)",
            """
            CREATE TABLE churn_fits (
              program_id TEXT PRIMARY KEY,
              fitted_at BIGINT NOT NULL,
              models TEXT NOT NULL
            )
            """,
            """
            CREATE TABLE member_rfm (
              program_id TEXT NOT NULL,
              member_id BIGINT NOT NULL,
              r BIGINT,
              f BIGINT,
              m BIGINT,
              recency_days BIGINT,
              frequency BIGINT NOT NULL,
              monetary_minor BIGINT NOT NULL,
              lifecycle TEXT NOT NULL,
              computed_at BIGINT NOT NULL,
              PRIMARY KEY (program_id, member_id)
            )
            """,
            "CREATE INDEX members_registered ON members (program_id, registered_at)",
        ]),
        Migration(version: 3, name: "segments and merges", statements: [
            """
            CREATE TABLE segments (
              program_id TEXT NOT NULL,
              segment_id TEXT NOT NULL,
              definition TEXT NOT NULL,
              created_at BIGINT NOT NULL,
              updated_at BIGINT NOT NULL,
              members_as_of BIGINT,
              PRIMARY KEY (program_id, segment_id)
            )
            """,
            // Who is in each saved segment now, and every entry and exit (segment.entered, segment.exited).
            """
            CREATE TABLE segment_members (
              program_id TEXT NOT NULL,
              member_id BIGINT NOT NULL,
              segment_id TEXT NOT NULL,
              since BIGINT NOT NULL,
              PRIMARY KEY (program_id, member_id, segment_id)
            )
            """,
            "CREATE INDEX segment_members_segment ON segment_members (program_id, segment_id, member_id)",
            """
            CREATE TABLE segment_changes (
              program_id TEXT NOT NULL,
              member_id BIGINT NOT NULL,
              segment_id TEXT NOT NULL,
              at BIGINT NOT NULL,
              entered BIGINT NOT NULL,
              cause TEXT NOT NULL,
              recorded_at BIGINT NOT NULL,
              PRIMARY KEY (program_id, member_id, segment_id, at, entered)
            )
            """,
            "CREATE INDEX segment_changes_segment ON segment_changes (program_id, segment_id, at)",
            // Members merged into others (会员合并): the absorbed member's row stays, pointing at the survivor.
            "ALTER TABLE members ADD COLUMN merged_into BIGINT",
            """
            CREATE TABLE member_merges (
              program_id TEXT NOT NULL,
              merge_id BIGINT NOT NULL,
              survivor_id BIGINT NOT NULL,
              absorbed_id BIGINT NOT NULL,
              slot BIGINT NOT NULL,
              merged_at BIGINT NOT NULL,
              merged_by TEXT NOT NULL,
              reason TEXT,
              undone_at BIGINT,
              undone_by TEXT,
              PRIMARY KEY (program_id, merge_id)
            )
            """,
            "CREATE INDEX member_merges_survivor ON member_merges (program_id, survivor_id)",
            "CREATE INDEX member_merges_absorbed ON member_merges (program_id, absorbed_id)",
        ]),
        Migration(version: 4, name: "spend rank", statements: [
            // Rank of the 365-day spend from the top, in percent (`member.rfm.topPercent`).
            "ALTER TABLE member_rfm ADD COLUMN top_percent BIGINT",
        ]),
        Migration(version: 5, name: "refunds aggregate", statements: [
            // Money given back by refunds, per member, local day of the refund, and the refunded
            // order's tier held, channel and store (the KPIs' net revenue).
            """
            CREATE TABLE member_refund_days (
              program_id TEXT NOT NULL,
              member_id BIGINT NOT NULL,
              day BIGINT NOT NULL,
              month BIGINT NOT NULL,
              tier_id TEXT NOT NULL,
              channel TEXT NOT NULL,
              store TEXT NOT NULL,
              refunds BIGINT NOT NULL,
              refunded_minor BIGINT NOT NULL,
              PRIMARY KEY (program_id, member_id, day, tier_id, channel, store)
            )
            """,
            "CREATE INDEX member_refund_days_day ON member_refund_days (program_id, day)",
        ]),
        Migration(version: 6, name: "tier moves by time", statements: [
            // The KPIs' upgrades and downgrades of a period read the tier history by time.
            "CREATE INDEX tier_changes_at ON tier_changes (program_id, at)",
        ]),
        Migration(version: 7, name: "claims by time", statements: [
            // The KPIs' funnel counts the members who claimed a benefit in a period.
            "CREATE INDEX benefit_grants_claimed ON benefit_grants (program_id, claimed_at) WHERE claimed_at IS NOT NULL",
        ]),
        Migration(version: 8, name: "fewer random pages per event", statements: [
            // A member's ledger entries (kind 0), lots (1) and growth entries (2) in one table keyed
            // by (program, member, kind, number): the rows one event writes share a b-tree leaf,
            // where three tables each wrote a random leaf of their own key index (the costliest
            // part of a durable write on SQLite: each random page is written twice, to the WAL and
            // at the checkpoint). The three tables stay readable under their names, as views.
            """
            CREATE TABLE member_ledger (
              program_id TEXT NOT NULL,
              member_id BIGINT NOT NULL,
              kind BIGINT NOT NULL,
              item_no BIGINT NOT NULL,
              event_no BIGINT,
              at BIGINT NOT NULL,
              order_id TEXT,
              reason TEXT,
              account TEXT,
              points BIGINT,
              lot_no BIGINT,
              note TEXT,
              source TEXT,
              available_at BIGINT,
              expires_at BIGINT,
              original BIGINT,
              remaining BIGINT,
              counts_at BIGINT,
              growth BIGINT,
              PRIMARY KEY (program_id, member_id, kind, item_no)
            )
            """,
            """
            INSERT INTO member_ledger (program_id, member_id, kind, item_no, event_no, at, order_id, reason, account, points, lot_no, note)
            SELECT program_id, member_id, 0, entry_no, event_no, at, order_id, reason, account, points, lot_no, note FROM ledger_entries
            """,
            """
            INSERT INTO member_ledger (program_id, member_id, kind, item_no, event_no, at, order_id, source, available_at, expires_at, original, remaining)
            SELECT program_id, member_id, 1, lot_no, event_no, earned_at, order_id, source, available_at, expires_at, original, remaining FROM lots
            """,
            """
            INSERT INTO member_ledger (program_id, member_id, kind, item_no, event_no, at, order_id, reason, counts_at, growth)
            SELECT program_id, member_id, 2, growth_no, event_no, at, order_id, reason, counts_at, growth FROM growth_entries
            """,
            "DROP TABLE ledger_entries",
            "DROP TABLE lots",
            "DROP TABLE growth_entries",
            """
            CREATE VIEW ledger_entries AS
            SELECT program_id, member_id, item_no AS entry_no, event_no, at, account, points, reason, lot_no, order_id, note FROM member_ledger WHERE kind = 0
            """,
            """
            CREATE VIEW lots AS
            SELECT program_id, member_id, item_no AS lot_no, event_no, source, order_id, at AS earned_at, available_at, expires_at, original, remaining
            FROM member_ledger WHERE kind = 1
            """,
            """
            CREATE VIEW growth_entries AS
            SELECT program_id, member_id, item_no AS growth_no, event_no, at, counts_at, growth, reason, order_id FROM member_ledger WHERE kind = 2
            """,
            // Open lots by expiry (reminders, the liability schedule); only lots have `remaining`.
            "CREATE INDEX member_ledger_open_expiry ON member_ledger (program_id, expires_at) WHERE remaining > 0",
            // Growth by the time it counts, with what the sums read (KPIs, the program's pace;
            // `kind` too, which SQLite needs to read it as covering through the view): appended
            // near its end by new events, where growth_entries had to be read whole.
            "CREATE INDEX member_ledger_growth_counts ON member_ledger (program_id, counts_at, member_id, growth, kind) WHERE kind = 2",
            // Orders by the time they were paid (a report's period), not by
            // member: a new order then lands near the index's end instead of on a random page.
            // Nothing else read a member's orders through the member index (a refund finds its
            // order by id).
            "DROP INDEX orders_member",
            "CREATE INDEX orders_paid ON orders (program_id, paid_at)",
        ]),
    ]

    public static var latestVersion: Int64 { migrations.last!.version }
}
