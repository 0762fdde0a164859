"""Operations over the ledger: hourly rollups, the dashboard's data and page, alerts and webhooks."""
