"""PEP 740 provenance: what a release's attestations say about who published it, and whether that drifted.

``parse`` reads PyPI's provenance objects (no I/O), ``verify`` checks signatures offline against the Sigstore
trust root shipped in the ``sigstore`` package, and ``drift`` is the pure rule the processor and the gate share:
a release that lost the attestations its recent predecessors all had, one attested by another repository or
workflow, or one whose attestation does not match the file.
"""
