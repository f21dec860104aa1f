"""OpenSSF malicious-packages ingestor: git tree diffs of OSV reports, classified by report id.

Modules: ``osv`` (pure parser), ``classify`` (pure change rules), ``gitsource`` (git adapter), ``index`` (the
last known report state), ``service`` (the poll), ``cli`` (``qwatch ingest openssf``). See ``README.md``.
"""
