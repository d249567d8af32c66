//! douyin-watch keeps a watch list of Douyin videos in SQLite, fetches each through onebound's paid
//! `douyin/item_get_video` API on a cron schedule, stores versioned snapshots of their metadata,
//! tracks the call quota from every answer's `api_info`, and records every failure by error code.
//!
//! Pure logic (no I/O, tested beside the code): [`video_id`], [`response`], [`api_info`],
//! [`content`], [`error_code`], [`attempt`], [`quota`], [`pace`], [`cron_schedule`].
//! The I/O shell: [`client`] (HTTP), [`short_link`], [`store`] (all SQL), [`collector`] (one pass),
//! [`daemon`] (cron around passes), [`metrics`] and [`health`] (the monitoring listener), [`notify`] (webhooks), [`simulator`] (a local onebound), [`cli`];
//! [`panics`] (the panic hook that keeps the secret out, and fault injection for tests).

pub mod api_info;
pub mod attempt;
pub mod cli;
pub mod client;
pub mod collector;
pub mod content;
pub mod cron_schedule;
pub mod daemon;
pub mod error_code;
pub mod health;
pub mod metrics;
pub mod notify;
pub mod pace;
pub mod panics;
pub mod quota;
pub mod response;
pub mod settings;
pub mod short_link;
pub mod simulator;
pub mod store;
pub mod video_id;
