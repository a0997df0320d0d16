"""The reporting module: sweeps -> a tidy table (CSV) -> matplotlib figures -> one HTML page.

Entry point: `nbconv report` (delegates to `nbconv.reports.cli.main`). Importable without torch.
"""
