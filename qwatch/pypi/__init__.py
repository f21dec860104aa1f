"""PyPI vocabulary shared by the ingestors, the gate and the local PyPI: names, versions, index URLs, page parsing.

The ground floor: imports nothing from ingestors, processors or subscribers, so one reading of a PyPI answer
serves every stage (the gate and the ingestor can no longer disagree about what a page says).
"""
