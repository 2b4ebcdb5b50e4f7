-- One row per cancelled order: what the cancellation did, written in the same
-- transaction as the stock it gave back, so a redelivered cancel gives nothing
-- back twice. payload is the stock-released event as published (empty when
-- nothing was released).
CREATE TABLE IF NOT EXISTS order_cancellations (
  order_id   VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  result     VARCHAR(16)  NOT NULL,
  items      TEXT         NOT NULL,
  payload    MEDIUMBLOB   NOT NULL,
  created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (order_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
