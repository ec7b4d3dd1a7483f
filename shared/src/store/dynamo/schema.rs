//! The DynamoDB tables: their names, and creating them with TTL (the dev
//! server and tests; in AWS the SAM template owns them).

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};

use super::DynamoStore;
use super::items::sdk_err;
use crate::error::StoreError;

/// Table names, one per data family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub stores: String,
    pub auth: String,
    pub aggregates: String,
    pub codes: String,
    pub connections: String,
    pub purchases: String,
}

impl Tables {
    /// `<prefix>stores`, `<prefix>auth`, `<prefix>aggregates`: what the dev
    /// server and tests create.
    pub fn with_prefix(prefix: &str) -> Self {
        Tables {
            stores: format!("{prefix}stores"),
            auth: format!("{prefix}auth"),
            aggregates: format!("{prefix}aggregates"),
            codes: format!("{prefix}codes"),
            connections: format!("{prefix}connections"),
            purchases: format!("{prefix}purchases"),
        }
    }

    fn all(&self) -> [&String; 5] {
        [
            &self.stores,
            &self.auth,
            &self.aggregates,
            &self.codes,
            &self.purchases,
        ]
    }
}

/// The connections table's indexes (see `connections`).
pub const BY_CHANNEL: &str = "by_channel";
pub const BY_SHARD: &str = "by_shard";
pub const BY_OPAQUE: &str = "by_opaque";
pub const BY_USER: &str = "by_user";

impl DynamoStore {
    /// Creates the tables with TTL if they do not exist (dev server and tests;
    /// in AWS the SAM template owns them).
    pub async fn ensure_tables(&self) -> Result<(), StoreError> {
        for name in self.tables.all() {
            let created = self
                .client
                .create_table()
                .table_name(name.as_str())
                .billing_mode(BillingMode::PayPerRequest)
                .attribute_definitions(attr_def("pk"))
                .attribute_definitions(attr_def("sk"))
                .key_schema(key_schema("pk", KeyType::Hash))
                .key_schema(key_schema("sk", KeyType::Range))
                .send()
                .await;
            self.finish_create(name.as_str(), created).await?;
        }
        self.ensure_connections_table().await
    }

    /// After a CreateTable: TTL on `expires_at` for a new table; a table
    /// that already exists is fine.
    async fn finish_create<O, R>(
        &self,
        table: &str,
        created: Result<
            O,
            aws_sdk_dynamodb::error::SdkError<
                aws_sdk_dynamodb::operation::create_table::CreateTableError,
                R,
            >,
        >,
    ) -> Result<(), StoreError>
    where
        R: std::fmt::Debug,
    {
        match created {
            Ok(_) => {
                let ttl = TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("expires_at")
                    .build()
                    .map_err(|e| StoreError::Internal(e.to_string()))?;
                self.client
                    .update_time_to_live()
                    .table_name(table)
                    .time_to_live_specification(ttl)
                    .send()
                    .await
                    .map_err(sdk_err)?;
                Ok(())
            }
            Err(e) if e.code() == Some("ResourceInUseException") => Ok(()),
            Err(e) => Err(sdk_err(e)),
        }
    }

    /// Creates the connections table with its indexes and TTL (dev server
    /// and tests; in AWS the SAM template owns it).
    async fn ensure_connections_table(&self) -> Result<(), StoreError> {
        let gsi = |name: &str, attr: &str, all: bool| {
            let projection = if all {
                Projection::builder()
                    .projection_type(ProjectionType::All)
                    .build()
            } else {
                // What fan-out and PIN revocation read: the expiry, the PIN mark.
                Projection::builder()
                    .projection_type(ProjectionType::Include)
                    .non_key_attributes("expires_at")
                    .non_key_attributes(super::connections::PIN_ISSUED)
                    .build()
            };
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(key_schema(attr, KeyType::Hash))
                .key_schema(key_schema("pk", KeyType::Range))
                .projection(projection)
                .build()
                .map_err(|e| StoreError::Internal(e.to_string()))
        };
        let table = &self.tables.connections;
        let mut create = self
            .client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key_schema("pk", KeyType::Hash))
            .key_schema(key_schema("sk", KeyType::Range));
        for attr in ["pk", "sk", "gc", "gx", "go", "gu"] {
            create = create.attribute_definitions(attr_def(attr));
        }
        for (name, attr, all) in [
            (BY_CHANNEL, "gc", false),
            (BY_SHARD, "gx", false),
            (BY_OPAQUE, "go", true),
            (BY_USER, "gu", true),
        ] {
            create = create.global_secondary_indexes(gsi(name, attr, all)?);
        }
        let created = create.send().await;
        self.finish_create(table, created).await
    }
}

impl DynamoStore {
    /// Turns on the connections table's stream of new images (what the SAM
    /// template declares) if it is off, and returns its ARN: the dev
    /// server's `--fanout stream` reads fan-out jobs from it.
    pub async fn ensure_job_stream(&self) -> Result<String, StoreError> {
        let table = &self.tables.connections;
        let described = self
            .client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(sdk_err)?;
        let t = described.table();
        let enabled = t
            .and_then(|t| t.stream_specification())
            .is_some_and(|s| s.stream_enabled());
        if enabled && let Some(arn) = t.and_then(|t| t.latest_stream_arn()) {
            return Ok(arn.to_string());
        }
        let spec = aws_sdk_dynamodb::types::StreamSpecification::builder()
            .stream_enabled(true)
            .stream_view_type(aws_sdk_dynamodb::types::StreamViewType::NewImage)
            .build()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let updated = self
            .client
            .update_table()
            .table_name(table)
            .stream_specification(spec)
            .send()
            .await
            .map_err(sdk_err)?;
        updated
            .table_description()
            .and_then(|t| t.latest_stream_arn())
            .map(str::to_string)
            .ok_or_else(|| StoreError::Internal("the table has no stream after enabling it".into()))
    }
}

fn attr_def(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("complete attribute definition")
}

fn key_schema(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .expect("complete key schema")
}
