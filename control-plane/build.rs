// The release binary embeds dashboard/dist (src/dashboard.rs); rebuild when a
// new dashboard build lands there, including the first one.
fn main() {
    println!("cargo:rerun-if-changed=../dashboard/dist");
    println!("cargo:rerun-if-changed=build.rs");
}
