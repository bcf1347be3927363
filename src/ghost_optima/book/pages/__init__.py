"""The generated pages: ledger, rules, summaries, checklist, performance, tables and figures."""
