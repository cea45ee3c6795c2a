//! The users endpoints through the real router, each test on SQLite and
//! on PostgreSQL.

#[path = "../common/mod.rs"]
mod common;
mod fixtures;

mod actions;
mod create;
mod list;
mod modify;
mod owners;
mod usage;
