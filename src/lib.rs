//! douyin-watch: keeps versioned snapshots of Douyin videos fetched through onebound's API.
