"""OpenSSF malicious-packages knowledge shared by the ingestor and the gate: OSV parsing, the repository's
layout (live, withdrawn, moved reports) and reading it with git."""
