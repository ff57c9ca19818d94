//! Prints the OpenAPI document the functions' declarations make (`make openapi` writes it to
//! docs/openapi.json, which the `auth` function serves at /api/openapi.json).

fn main() -> std::process::ExitCode {
    match integration_tests::openapi::document_text() {
        Ok(text) => {
            print!("{text}");
            std::process::ExitCode::SUCCESS
        }
        Err(problem) => {
            eprintln!("the declarations do not make a document: {problem}");
            std::process::ExitCode::FAILURE
        }
    }
}
