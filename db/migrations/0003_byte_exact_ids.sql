-- Order ids are compared as bytes (DESIGN.md): utf8mb4_bin is a PAD SPACE
-- collation in MariaDB, so 'TS1' and 'TS1 ' were one key. VARBINARY compares
-- bytes and never pads, folds or normalises. 255 bytes is the widest
-- MAX_ORDER_ID_BYTES may be set to (default 128).
--
-- items held the lines as JSON in a TEXT (64 KB): an invalid order with
-- thousands of lines failed with 1406 on every attempt. The decoder now bounds
-- the lines it lists, and MEDIUMTEXT leaves room besides.
--
-- MODIFY is idempotent, so a migration interrupted half-way can run again.
ALTER TABLE order_outcomes
  MODIFY order_id VARBINARY(255) NOT NULL,
  MODIFY items    MEDIUMTEXT     NOT NULL;
ALTER TABLE order_cancellations
  MODIFY order_id VARBINARY(255) NOT NULL,
  MODIFY items    MEDIUMTEXT     NOT NULL;
