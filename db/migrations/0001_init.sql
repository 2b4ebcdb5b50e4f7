-- The inventory table of the contract: `INSERT INTO inventory (goods, stocks)
-- VALUES (16, 10)` is a valid way to stock goods.
CREATE TABLE IF NOT EXISTS inventory (
  goods      BIGINT       NOT NULL,
  stocks     INT          NOT NULL DEFAULT 0,
  version    BIGINT       NOT NULL DEFAULT 0,
  updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (goods),
  CONSTRAINT inventory_stocks_not_negative CHECK (stocks >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- The idempotency ledger: one row per decided order, written in the same
-- transaction as its stock change. payload is the outcome event as published.
CREATE TABLE IF NOT EXISTS order_outcomes (
  order_id   VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  status     VARCHAR(16)  NOT NULL,
  reason     VARCHAR(32)  NOT NULL DEFAULT '',
  items      TEXT         NOT NULL,
  payload    MEDIUMBLOB   NOT NULL,
  strategy   VARCHAR(16)  NOT NULL DEFAULT '',
  created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (order_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
