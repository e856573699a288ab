"""Demo data set and the ITI-65 bundle builder used by the demo, the tests and the bench."""
