//! Opening a daemon's SQLite database: WAL, a busy timeout, and numbered
//! schema migrations tracked in `PRAGMA user_version`.

use std::path::Path;

use anyhow::Context;
use rusqlite::Connection;

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy)]
pub enum Durability {
    /// `synchronous=FULL`: a commit survives power loss. For the mover's catalog.
    Full,
    /// `synchronous=NORMAL`: a commit survives a process crash, not power loss.
    Normal,
}

/// Opens (creating) the database at `path` and applies `migrations` in order:
/// migration `i` (0-based) runs once, when `user_version` is `i`.
pub fn open(
    path: &Path,
    durability: Durability,
    migrations: &[&str],
) -> anyhow::Result<Connection> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let mut conn =
        Connection::open(path).with_context(|| format!("open sqlite {}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Temporary files in memory: the sub-journal of a savepoint (the mover
    // runs each request of a group in one) otherwise spills past 64 KiB to
    // a file in the system's temporary folder, written page by page.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    migrate(&mut conn, migrations)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection, migrations: &[&str]) -> anyhow::Result<()> {
    let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    // A newer binary's schema: this one would misread it.
    anyhow::ensure!(
        version <= migrations.len(),
        "the database is at schema version {version}, newer than this binary's {}: run the newer binary, or restore a copy from before it ran",
        migrations.len()
    );
    for (i, sql) in migrations.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .with_context(|| format!("apply migration {}", i + 1))?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied schema migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/x.db");
        let first = ["CREATE TABLE a (x INTEGER);"];
        drop(open(&path, Durability::Normal, &first).unwrap());
        // Reopening must not re-run migration 1 (CREATE TABLE would fail).
        let both = [
            "CREATE TABLE a (x INTEGER);",
            "ALTER TABLE a ADD COLUMN y TEXT;",
        ];
        let conn = open(&path, Durability::Full, &both).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, 2);
        conn.execute("INSERT INTO a (x, y) VALUES (1, 'z')", [])
            .unwrap();
        drop(conn);
        // An older binary refuses the newer schema rather than misread it.
        let e = open(&path, Durability::Full, &first).unwrap_err();
        assert!(
            format!("{e:#}").contains("schema version 2, newer"),
            "{e:#}"
        );
    }

    #[test]
    fn a_savepoints_journal_stays_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("x.db"), Durability::Normal, &[]).unwrap();
        let temp_store: i64 = conn
            .pragma_query_value(None, "temp_store", |r| r.get(0))
            .unwrap();
        assert_eq!(temp_store, 2, "temp_store is MEMORY");
    }
}
