//! The `douyin-watch` binary: everything lives in the library; see `douyin_watch::cli`.

fn main() -> std::process::ExitCode {
    douyin_watch::cli::main()
}
