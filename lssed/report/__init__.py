"""The benchmark report: tables, plots and one HTML page from the runs in storage."""
