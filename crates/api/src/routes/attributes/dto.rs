//! Wire types of the custom attribute definition endpoints: Python sends options as strings,
//! Node as `{value, label}` objects.

use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use idvault_core::directory::{AttributeDef, AttributeOption, AttributeType};
use idvault_core::error::Error;

use crate::fields as f;

/// A custom attribute definition.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttributeDto {
    #[serde(default)]
    #[schema(schema_with = f::attribute_name_req, required = true)]
    pub name: String,
    #[serde(rename = "type", default, deserialize_with = "f::opt_value_int")]
    #[schema(schema_with = f::attribute_type_req, required = true)]
    pub kind: Option<Value>,
    /// Defaults to the name.
    #[serde(default)]
    #[schema(schema_with = f::text)]
    pub display_name: String,
    #[serde(default)]
    #[schema(schema_with = f::attribute_options)]
    pub options: Vec<Value>,
    #[serde(default)]
    pub required: bool,
}

impl AttributeDto {
    /// The definition as given (core fills in defaults such as the display name).
    pub fn into_def(self) -> Result<AttributeDef, Error> {
        Ok(AttributeDef {
            kind: AttributeType::from_json(self.kind.as_ref().ok_or(Error::MissingArgument("type"))?)?,
            options: self.options.iter().map(option_of).collect::<Result<_, _>>()?,
            display_name: self.display_name,
            name: self.name,
            required: self.required,
        })
    }
}

#[derive(Deserialize, Default, ToSchema)]
pub struct AttributesRequest {
    #[serde(default)]
    #[schema(schema_with = f::attributes_req::<AttributeDto>, required = true)]
    pub attributes: Vec<AttributeDto>,
}

#[derive(Serialize, ToSchema)]
pub struct AttributeOptionBody {
    pub value: String,
    pub label: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttributeResponse {
    pub name: String,
    /// A number from 1 (string) to 6 (date).
    #[serde(rename = "type")]
    pub kind: i64,
    pub display_name: String,
    pub options: Vec<AttributeOptionBody>,
    pub required: bool,
}

#[derive(Serialize, ToSchema)]
pub struct AttributesBody {
    pub data: Vec<AttributeResponse>,
}

pub fn attributes_body(defs: Vec<AttributeDef>) -> Json<AttributesBody> {
    Json(AttributesBody {
        data: defs
            .into_iter()
            .map(|d| AttributeResponse {
                name: d.name,
                kind: d.kind as i64,
                display_name: d.display_name,
                options: d
                    .options
                    .into_iter()
                    .map(|o| AttributeOptionBody { value: o.value, label: o.label })
                    .collect(),
                required: d.required,
            })
            .collect(),
    })
}

/// Options as Python sends them (strings) or as Node sends them (`{value, label}`).
fn option_of(v: &Value) -> Result<AttributeOption, Error> {
    match v {
        Value::String(s) => Ok(AttributeOption { value: s.clone(), label: s.clone() }),
        Value::Object(o) => {
            let value = o.get("value").and_then(Value::as_str).unwrap_or_default().to_owned();
            let label =
                o.get("label").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| value.clone());
            Ok(AttributeOption { value, label })
        }
        _ => Err(Error::invalid("options", "options are strings or {value, label}")),
    }
}

#[derive(Deserialize, Default, ToSchema)]
pub struct NamesRequest {
    /// The names of the definitions to delete.
    #[serde(default)]
    #[schema(schema_with = f::name_list_req)]
    pub names: Vec<String>,
}
