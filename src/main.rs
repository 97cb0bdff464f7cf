fn main() {
    std::process::exit(pgcdc::cli::main());
}
