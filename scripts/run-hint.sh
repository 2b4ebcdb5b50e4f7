#!/usr/bin/env bash
# Printed by `make run` before the worker starts: how to stock goods and send an
# order by hand. Kept in one place so the README and this text agree.
cat <<'TXT'
------------------------------------------------------------------------------
stockworker is starting. In another terminal:

  # stock goods 16 with 10
  mariadb -h127.0.0.1 -uroot stockflow -e 'INSERT INTO inventory (goods, stocks) VALUES (16, 10)'

  # send an order with kcat ...
  echo 'A1001|{"order_id":"A1001","items":[{"goods_id":16,"num":1}]}' | \
    kcat -P -b 127.0.0.1:9092 -t orders.placed -K '|'

  # ... or with the Kafka console producer
  echo 'A1002|{"order_id":"A1002","items":[{"goods_id":16,"num":2}]}' | \
    scripts/kafka-console-producer.sh --bootstrap-server 127.0.0.1:9092 --topic orders.placed \
      --property parse.key=true --property key.separator='|'

  # read the outcomes and the stock
  kcat -C -b 127.0.0.1:9092 -t stock.events -e -f '%k %h %s\n'
  mariadb -h127.0.0.1 -uroot stockflow -e 'SELECT * FROM inventory'

Stop the worker with Ctrl-C.
------------------------------------------------------------------------------
TXT
