-- stockflow's two database users (README "Secure MySQL and Redis") with
-- development passwords, for a laptop: deploy/compose.yaml mounts this file
-- into MySQL's /docker-entrypoint-initdb.d, so the image's entrypoint runs it
-- once, as root, at the first start, after creating the database stockflow
-- (MYSQL_DATABASE). The dev Kubernetes overlay uses the same users.

-- Migrations (the migrate service, `stockworker migrate`): DDL on the schema.
CREATE USER 'stockflow_migrate'@'%' IDENTIFIED BY 'stockflow-migrate-dev';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, REFERENCES
  ON stockflow.* TO 'stockflow_migrate'@'%';

-- The workers, and `orderctl stock`: no DELETE, no DDL, no global privilege.
-- Production grants SELECT, INSERT, UPDATE table by table (SELECT only on
-- schema_migrations) once the migrations created the tables; here the tables
-- do not exist yet, and MySQL grants on a missing table only with CREATE, so
-- the grant is on the database: that also lets the worker write
-- schema_migrations, and nothing else beyond production's.
CREATE USER 'stockflow'@'%' IDENTIFIED BY 'stockflow-worker-dev';
GRANT SELECT, INSERT, UPDATE ON stockflow.* TO 'stockflow'@'%';
