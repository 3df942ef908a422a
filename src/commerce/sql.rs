//! The statements generated from the table declarations of `schema.rs`, built once per process.

use std::sync::LazyLock;

use super::schema::{CARTS, CUSTOMERS, ITEM_COLUMNS, ITEM_INSERTS, ORDERS, PRODUCTS, Table};

pub(crate) static CUSTOMERS_SQL: LazyLock<String> = LazyLock::new(|| upsert_sql(&CUSTOMERS));
pub(crate) static PRODUCTS_SQL: LazyLock<String> = LazyLock::new(|| upsert_sql(&PRODUCTS));
pub(crate) static ORDERS_SQL: LazyLock<String> = LazyLock::new(|| upsert_sql(&ORDERS));
pub(crate) static CARTS_SQL: LazyLock<String> = LazyLock::new(|| upsert_sql(&CARTS));
pub(crate) static PRODUCT_PATCH_SQL: LazyLock<String> = LazyLock::new(|| patch_sql(&PRODUCTS));
pub(crate) static ITEMS_SQL: LazyLock<String> = LazyLock::new(items_sql);

/// The row is dated and the payload is not (rule 2 of the module docs of `commerce`).
const FILL_ONLY: &str = "(EXCLUDED.source_updated_at IS NULL AND t.source_updated_at IS NOT NULL)";

fn join<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> String {
    items
        .into_iter()
        .map(|s| s.as_ref().to_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `SET a = x, …`, the stored row and the row the update would write, from `(column, new value)` pairs.
struct Targets<'a>(Vec<(&'a str, String)>);

impl Targets<'_> {
    fn sets(&self) -> String {
        join(self.0.iter().map(|(n, e)| format!("{n} = {e}")))
    }

    fn old(&self) -> String {
        join(self.0.iter().map(|(n, _)| format!("t.{n}")))
    }

    fn updated(&self) -> String {
        join(self.0.iter().map(|(_, e)| e))
    }
}

/// One statement per batch: the JSON rows become a record set, upserted on `salla_id` under the rule of the
/// module docs of `commerce`. It answers the ids inserted, the ids updated, and how many payloads were stale.
pub(crate) fn upsert_sql<T>(table: &Table<T>) -> String {
    let name = table.name;
    let mut record = vec!["salla_id bigint".to_owned()];
    record.extend(
        table
            .columns
            .iter()
            .chain(table.extra)
            .map(|c| format!("{} {}", c.name, c.ty)),
    );
    record.extend([
        "raw jsonb".to_owned(),
        "source_updated_at timestamptz".to_owned(),
    ]);

    let mut names = vec!["salla_id"];
    names.extend(table.columns.iter().map(|c| c.name));
    names.extend(["raw", "source_updated_at"]);
    names.extend(table.carried.iter().map(|(name, _)| *name));
    let values = join(names.iter().map(|column| {
        table
            .inserts
            .iter()
            .chain(table.carried)
            .find(|(name, _)| name == column)
            .map_or_else(|| format!("i.{column}"), |(_, expr)| (*expr).to_owned())
    }));

    let mut targets = Targets(
        table
            .columns
            .iter()
            .map(|c| {
                let keys = join(c.keys.iter().map(|k| format!("'{k}'")));
                let n = c.name;
                let expr = format!(
                    "CASE WHEN EXCLUDED.raw ?| ARRAY[{keys}] AND NOT {FILL_ONLY} THEN EXCLUDED.{n} \
                     ELSE COALESCE(t.{n}, EXCLUDED.{n}) END"
                );
                (n, expr)
            })
            .collect(),
    );
    targets.0.push((
        "raw",
        format!("CASE WHEN {FILL_ONLY} THEN EXCLUDED.raw || t.raw ELSE t.raw || EXCLUDED.raw END"),
    ));
    targets.0.push((
        "source_updated_at",
        "COALESCE(EXCLUDED.source_updated_at, t.source_updated_at)".to_owned(),
    ));
    targets.0.extend(
        table
            .carried
            .iter()
            .map(|(name, _)| (*name, format!("EXCLUDED.{name}"))),
    );

    format!(
        "WITH incoming AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS i({record})), \
         stale AS (SELECT count(*) AS n FROM incoming i JOIN {name} t ON t.salla_id = i.salla_id \
                   WHERE i.source_updated_at < t.source_updated_at), \
         written AS ( \
           INSERT INTO {name} AS t ({names}) \
           SELECT {values} FROM incoming i LEFT JOIN {name} e ON e.salla_id = i.salla_id \
           ON CONFLICT (salla_id) DO UPDATE SET {sets}, synced_at = now(), updated_at = now() \
           WHERE (EXCLUDED.source_updated_at IS NULL OR t.source_updated_at IS NULL \
                  OR EXCLUDED.source_updated_at >= t.source_updated_at) \
             AND ROW({old}) IS DISTINCT FROM ROW({new}) \
           RETURNING t.salla_id, (t.xmax = 0) AS inserted) \
         SELECT COALESCE(array_agg(salla_id) FILTER (WHERE inserted), '{{}}'), \
                COALESCE(array_agg(salla_id) FILTER (WHERE NOT inserted), '{{}}'), \
                (SELECT n FROM stale) \
         FROM written",
        record = record.join(", "),
        names = names.join(", "),
        sets = targets.sets(),
        old = targets.old(),
        new = targets.updated(),
    )
}

/// Sets the columns a patch carries (the keys of `$2`, a JSON row as for the upserts: `->>` reads numbers
/// and booleans as their text, and `null` clears) on product `$1`, merges `$3` into `raw`, and answers the
/// row id when something changed.
pub(crate) fn patch_sql<T>(table: &Table<T>) -> String {
    let targets = Targets(
        table
            .columns
            .iter()
            .map(|c| {
                let n = c.name;
                let value = match c.ty {
                    "text" => format!("p.v->>'{n}'"),
                    "jsonb" => format!("NULLIF(p.v->'{n}', 'null'::jsonb)"),
                    ty => format!("(p.v->>'{n}')::{ty}"),
                };
                let value = if c.required {
                    format!("COALESCE({value}, t.{n})")
                } else {
                    value
                };
                (
                    n,
                    format!("CASE WHEN p.v ? '{n}' THEN {value} ELSE t.{n} END"),
                )
            })
            .chain([("raw", "t.raw || p.overlay".to_owned())])
            .collect(),
    );
    format!(
        "WITH p AS (SELECT $2::jsonb AS v, $3::jsonb AS overlay) \
         UPDATE {name} AS t SET {sets}, synced_at = now(), updated_at = now() FROM p \
         WHERE t.salla_id = $1 AND ROW({old}) IS DISTINCT FROM ROW({new}) RETURNING t.id",
        name = table.name,
        sets = targets.sets(),
        old = targets.old(),
        new = targets.updated(),
    )
}

/// Replaces the items of orders that carried full lines (`$2`: `{salla_id, source_updated_at}` of each, `$1`:
/// their items), when the order row took that payload: a dated payload that was not stale, an undated one
/// onto an undated row, or an undated one onto an order that has no items yet (rule 2: fill only). Items
/// that are no longer in the order are deleted. Answers the orders whose items changed.
fn items_sql() -> String {
    let mut names = vec!["order_salla_id"];
    names.extend(ITEM_COLUMNS.iter().map(|c| c.name));
    let record = join(
        [
            "salla_id bigint".to_owned(),
            "order_salla_id bigint".to_owned(),
        ]
        .into_iter()
        .chain(ITEM_COLUMNS.iter().map(|c| format!("{} {}", c.name, c.ty))),
    );
    let values = join(
        ["i.salla_id".to_owned()]
            .into_iter()
            .chain(names.iter().map(|n| {
                ITEM_INSERTS
                    .iter()
                    .find(|(column, _)| column == n)
                    .map_or_else(|| format!("i.{n}"), |(_, expr)| (*expr).to_owned())
            })),
    );
    let targets = Targets(
        names
            .iter()
            .map(|n| (*n, format!("EXCLUDED.{n}")))
            .collect(),
    );
    format!(
        "WITH item AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS i({record})), \
         full_order AS (SELECT * FROM jsonb_to_recordset($2::jsonb) AS f(salla_id bigint, source_updated_at timestamptz)), \
         target AS ( \
           SELECT o.salla_id FROM full_order f JOIN orders o ON o.salla_id = f.salla_id \
           WHERE CASE WHEN f.source_updated_at IS NOT NULL THEN o.source_updated_at = f.source_updated_at \
                      WHEN o.source_updated_at IS NULL THEN true \
                      ELSE NOT EXISTS (SELECT 1 FROM order_items x WHERE x.order_salla_id = o.salla_id) END), \
         removed AS ( \
           DELETE FROM order_items x USING target g \
           WHERE x.order_salla_id = g.salla_id AND NOT EXISTS (SELECT 1 FROM item i WHERE i.salla_id = x.salla_id) \
           RETURNING x.order_salla_id), \
         written AS ( \
           INSERT INTO order_items AS t (salla_id, {names}) \
           SELECT {values} FROM item i JOIN target g ON g.salla_id = i.order_salla_id \
           ON CONFLICT (salla_id) DO UPDATE SET {sets}, synced_at = now(), updated_at = now() \
           WHERE ROW({old}) IS DISTINCT FROM ROW({new}) \
           RETURNING t.order_salla_id) \
         SELECT COALESCE(array_agg(DISTINCT changed.order_salla_id), '{{}}') \
         FROM (SELECT order_salla_id FROM removed UNION ALL SELECT order_salla_id FROM written) AS changed",
        names = names.join(", "),
        sets = targets.sets(),
        old = targets.old(),
        new = targets.updated(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_sql_names_every_column_once() {
        fn check<T>(table: &Table<T>) {
            let sql = upsert_sql(table);
            for column in table.columns {
                assert!(
                    sql.contains(&format!(" {} = CASE", column.name)),
                    "{}: {}",
                    table.name,
                    column.name
                );
            }
            assert!(
                !sql.contains("deleted_at"),
                "upserts never touch deleted_at"
            );
        }
        check(&CUSTOMERS);
        check(&PRODUCTS);
        check(&ORDERS);
        check(&CARTS);
        let patch = patch_sql(&PRODUCTS);
        assert!(patch.contains("(p.v->>'price')::numeric(14,2)"));
        assert!(patch.contains("COALESCE(p.v->>'name', t.name)"));
        let items = items_sql();
        assert!(items.contains("COALESCE(i.quantity, 0)"));
        assert!(items.contains("raw = EXCLUDED.raw"));
    }
}
