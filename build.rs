//! Rebuilds when a migration changes: `sqlx::migrate!` embeds `migrations/` at compile time, and
//! Cargo would not otherwise notice a new file there.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
