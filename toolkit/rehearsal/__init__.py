"""Upgrade rehearsals under live load: run an upgrade through the engine while traffic flows, then prove nothing was
lost and nothing went dark (verdict.py decides, report.py writes JSON, JUnit, a table and a timeline picture)."""
