# The vendored modules hold mixins and helpers, not tests of their own: pytest collects nothing here.
collect_ignore_glob = ["*.py", "*/*.py"]
