//! OpenAPI schemas of the request fields whose values the API checks, built from the same limits
//! (`idvault_core::limits`) and rules core enforces, so that the document says what a request
//! must look like and cannot drift from the checks. Each function is used with
//! `#[schema(schema_with = ...)]` or `#[param(schema_with = ...)]`; `*_opt` variants also accept
//! `null` (which the API reads as "not given").
//!
//! Lengths: core counts UTF-8 bytes, JSON Schema counts characters; `maxLength` is the byte limit,
//! so a value of that many multi-byte characters passes the schema and not the API (noted in the
//! descriptions).

use serde::{Deserialize, Deserializer};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn, ParameterStyle};
use utoipa::openapi::schema::{
    AdditionalProperties, AllOfBuilder, AnyOf, AnyOfBuilder, Array, ArrayBuilder, ArrayItems, Object,
    ObjectBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr, Required};
use utoipa::PartialSchema;

use idvault_core::limits::{AUDIT_SEARCH_MAX_LIMIT, MAX_AUDIT_FIELD_LEN};
use idvault_core::limits::{
    MAX_APP_URL_PARAMS, MAX_ATTRIBUTE_NAME_LEN, MAX_BATCH_TOKENS, MAX_BATCH_USERS, MAX_BODY_BYTES,
    MAX_CUSTOM_ATTRIBUTES_BYTES, MAX_FIELD_LEN, MAX_FILTER_VALUES, MAX_LIST_ITEMS, MAX_LOAD_USERS,
    MAX_LOGIN_IDS, MAX_OUTBOUND_TEXT_LEN, MAX_PROVIDER_NAME_LEN, MAX_SCOPES, MAX_SEARCH_FILTERS,
    MAX_SEARCH_TEXT_LEN, MAX_SORT_FIELDS, MAX_TOKEN_LEN, MAX_URL_LEN, MAX_USER_ID_LEN, SEARCH_MAX_LIMIT,
};

/// No NUL character: the API refuses NUL anywhere in a request (`crate::extract`).
pub const NO_NUL_PATTERN: &str = r"^[^\u0000]*$";

/// Characters Rust's `char::is_control` refuses (Unicode `Cc`), as a regex class body.
const CONTROL: &str = r"\u0000-\u001f\u007f-\u009f";

/// No control characters.
pub fn printable_pattern() -> String {
    format!("^[^{CONTROL}]*$")
}

/// No control characters and not only white space (core trims, then requires a value).
pub fn not_blank_pattern() -> String {
    format!("^[^{CONTROL}]*[^\\s{CONTROL}][^{CONTROL}]*$")
}

/// `idvault_core::user::model::looks_like_email`: one `@`, a non-empty local part, a dotted
/// domain that neither starts nor ends with a dot, no white space; or empty (none).
pub const EMAIL_PATTERN: &str = r"^$|^[^@\s\u0000-\u001f\u007f-\u009f]+@[^@\s.\u0000-\u001f\u007f-\u009f][^@\s\u0000-\u001f\u007f-\u009f]*\.[^@\s\u0000-\u001f\u007f-\u009f]*[^@\s.\u0000-\u001f\u007f-\u009f]$";

/// `idvault_core::user::model::looks_like_phone` (E.164: `+` and 6 to 15 digits), or empty.
pub const PHONE_PATTERN: &str = r"^$|^\+[0-9]{6,15}$";

/// `idvault_core::ids::ProviderName`: lowercase letters, digits, `-` and `_`.
pub fn provider_pattern() -> String {
    format!("^[a-z0-9_-]{{1,{MAX_PROVIDER_NAME_LEN}}}$")
}

/// `idvault_core::provider::validate_url`: an absolute http(s) URL without white space or
/// control characters, or empty (none).
pub const URL_PATTERN: &str =
    r"^$|^https?://[^/\s\u0000-\u001f\u007f-\u009f][^\s\u0000-\u001f\u007f-\u009f]*$";

/// Provider URLs: as [`URL_PATTERN`], https only.
pub const PROVIDER_URL_PATTERN: &str =
    r"^$|^https://[^/\s\u0000-\u001f\u007f-\u009f][^\s\u0000-\u001f\u007f-\u009f#]*$";

/// Provider issuers: as [`PROVIDER_URL_PATTERN`], and without a query (`?`), since the discovery
/// document is fetched at `<issuer>/.well-known/openid-configuration`.
pub const ISSUER_PATTERN: &str =
    r"^$|^https://[^/\s\u0000-\u001f\u007f-\u009f][^\s\u0000-\u001f\u007f-\u009f#?]*$";

/// Scopes: no spaces (and no control characters).
pub const SCOPE_PATTERN: &str = r"^[^\s\u0000-\u001f\u007f-\u009f]+$";

/// The user statuses (`idvault_core::user::UserStatus`).
pub const STATUSES: [&str; 4] = ["enabled", "disabled", "invited", "expired"];

/// Largest integer a JSON number carries exactly (2^53 - 1); integer fields are bounded by it.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

fn nullable(t: Type, nullable: bool) -> SchemaType {
    if nullable {
        SchemaType::from_iter([t, Type::Null])
    } else {
        SchemaType::new(t)
    }
}

fn string(null: bool, min: usize, max: usize, pattern: impl Into<String>, description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String, null))
        .min_length((min > 0).then_some(min))
        .max_length(Some(max))
        .pattern(Some(pattern))
        .description(Some(description))
        .build()
}

fn array(null: bool, min: usize, max: usize, items: Object, description: &str) -> Array {
    ArrayBuilder::new()
        .schema_type(nullable(Type::Array, null))
        .items(items)
        .min_items((min > 0).then_some(min))
        .max_items(Some(max))
        .description(Some(description))
        .build()
}

fn bytes(max: usize) -> String {
    format!("at most {max} bytes of UTF-8")
}

// ---- strings ----

/// Optional free text: at most `MAX_FIELD_LEN` bytes, no control characters.
pub fn text_opt() -> Object {
    string(
        true,
        0,
        MAX_FIELD_LEN,
        printable_pattern(),
        &format!("Text, {}, no control characters", bytes(MAX_FIELD_LEN)),
    )
}

/// A required name (tenant, role, permission, attribute): not blank, printable, bounded.
pub fn name_req() -> Object {
    string(
        false,
        1,
        MAX_FIELD_LEN,
        not_blank_pattern(),
        &format!("Not blank, {}, no control characters", bytes(MAX_FIELD_LEN)),
    )
}

/// A custom attribute name, in definitions and search filters alike: the rule of
/// `idvault_core::directory::check_attribute_name` (1 to `MAX_ATTRIBUTE_NAME_LEN` bytes of
/// printable text without quotes, backslashes or surrounding spaces).
pub fn attribute_name_req() -> Object {
    string(
        false,
        1,
        MAX_ATTRIBUTE_NAME_LEN,
        format!("^[^\\s\"\\\\{CONTROL}]([^\"\\\\{CONTROL}]*[^\\s\"\\\\{CONTROL}])?$"),
        "An attribute name: printable, without quotes, backslashes or surrounding spaces",
    )
}

/// An optional name: not blank when given; null means "not given".
pub fn name_opt() -> Object {
    string(
        true,
        1,
        MAX_FIELD_LEN,
        not_blank_pattern(),
        &format!("Not blank, {}, no control characters", bytes(MAX_FIELD_LEN)),
    )
}

/// An optional new name: not blank, or empty (or null) to keep the current one.
pub fn new_name_opt() -> Object {
    string(
        true,
        0,
        MAX_FIELD_LEN,
        format!("^$|{}", not_blank_pattern()),
        &format!("Not blank, {}, no control characters; empty keeps the name", bytes(MAX_FIELD_LEN)),
    )
}

/// Text that may be absent but not null.
pub fn text() -> Object {
    string(
        false,
        0,
        MAX_FIELD_LEN,
        printable_pattern(),
        &format!("Text, {}, no control characters", bytes(MAX_FIELD_LEN)),
    )
}

/// A required login id (`idvault_core::ids::LoginId`).
pub fn login_id_req() -> Object {
    string(
        false,
        1,
        MAX_FIELD_LEN,
        not_blank_pattern(),
        &format!("A login id: not blank, {}, no control characters", bytes(MAX_FIELD_LEN)),
    )
}

/// An optional login id; empty or null means "not given".
pub fn login_id_opt() -> Object {
    string(
        true,
        0,
        MAX_FIELD_LEN,
        format!("^$|{}", not_blank_pattern()),
        &format!(
            "A login id: not blank, {}, no control characters; empty or null means not given",
            bytes(MAX_FIELD_LEN)
        ),
    )
}

/// An optional user id (`idvault_core::ids::UserId`); empty or null means "not given".
pub fn user_id_opt() -> Object {
    string(
        true,
        0,
        MAX_USER_ID_LEN,
        printable_pattern(),
        &format!(
            "A user id: {}, no control characters; empty or null means not given",
            bytes(MAX_USER_ID_LEN)
        ),
    )
}

fn user_id_item() -> Object {
    string(false, 1, MAX_USER_ID_LEN, printable_pattern(), &format!("A user id, {}", bytes(MAX_USER_ID_LEN)))
}

pub fn email_opt() -> Object {
    string(
        true,
        0,
        MAX_FIELD_LEN,
        EMAIL_PATTERN,
        &format!(
            "An email address (one `@`, a dotted domain, no spaces), {}; empty clears",
            bytes(MAX_FIELD_LEN)
        ),
    )
}

pub fn phone_opt() -> Object {
    string(true, 0, 16, PHONE_PATTERN, "A phone number in E.164 format, such as `+14155550123`; empty clears")
}

fn status(null: bool) -> Object {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String, null))
        .enum_values(Some(STATUSES.iter().copied().map(Some).chain(null.then_some(None))))
        .description(Some("The user's status"))
        .build()
}

pub fn status_opt() -> Object {
    status(true)
}

pub fn status_req() -> Object {
    status(false)
}

/// A provider name (`idvault_core::ids::ProviderName`).
pub fn provider_req() -> Object {
    string(
        false,
        1,
        MAX_PROVIDER_NAME_LEN,
        provider_pattern(),
        "A provider name: lowercase letters, digits, `-` and `_`, such as `google`",
    )
}

/// A provider preset name (`idvault_core::provider::presets`), or empty for none.
pub fn preset_opt() -> Object {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String, true))
        .enum_values(Some(
            std::iter::once("")
                .chain(idvault_core::provider::presets::PRESETS.iter().map(|p| p.name))
                .map(Some)
                .chain([None]),
        ))
        .description(Some("A preset whose endpoints, scopes and client authentication to start from"))
        .build()
}

/// How the client authenticates to the token endpoint.
pub fn auth_method_opt() -> Object {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String, true))
        .enum_values(Some([Some("client_secret_basic"), Some("client_secret_post"), None]))
        .description(Some("How the client authenticates to the token endpoint"))
        .build()
}

/// The allowed redirect URLs of a project: absolute http(s) URLs.
pub fn redirect_urls() -> Array {
    array(
        false,
        0,
        idvault_core::limits::MAX_REDIRECT_URLS,
        string(
            false,
            1,
            MAX_URL_LEN,
            URL_PATTERN,
            &format!("An absolute http(s) URL, {}", bytes(MAX_URL_LEN)),
        ),
        "The allowed redirect URLs of sign-ins (compared without their query string)",
    )
}

/// A required client id: 1 to `MAX_FIELD_LEN` bytes.
pub fn client_id_req() -> Object {
    string(
        false,
        1,
        MAX_FIELD_LEN,
        printable_pattern(),
        &format!("The OAuth client id, {}", bytes(MAX_FIELD_LEN)),
    )
}

/// A required opaque value (a code or state).
pub fn opaque_req() -> Object {
    string(false, 1, MAX_FIELD_LEN, printable_pattern(), "The value from the previous step")
}

/// An optional provider URL; empty or null means "not given". https, as the provider URL policy
/// requires (`idvault_core::provider::address`); http is accepted only for hosts an operator
/// allowed with `--provider-allowed-hosts`, which the document cannot know.
pub fn provider_url_opt() -> Object {
    provider_url(PROVIDER_URL_PATTERN)
}

/// An optional provider issuer: a provider URL without a query.
pub fn issuer_opt() -> Object {
    provider_url(ISSUER_PATTERN)
}

fn provider_url(pattern: &str) -> Object {
    string(
        true,
        0,
        MAX_URL_LEN,
        pattern,
        &format!(
            "An absolute https URL at a public address, {} (http only for hosts in \
             --provider-allowed-hosts)",
            bytes(MAX_URL_LEN)
        ),
    )
}

pub fn token_req() -> Object {
    string(false, 1, MAX_TOKEN_LEN, NO_NUL_PATTERN, &format!("A token, {}", bytes(MAX_TOKEN_LEN)))
}

/// The OAuth client secret: write-only, never answered; absent or empty keeps the stored one.
pub fn client_secret_opt() -> Object {
    let mut o = string(
        true,
        0,
        MAX_FIELD_LEN,
        NO_NUL_PATTERN,
        "Write-only: never answered. Absent or empty keeps the stored secret, except when the client \
         id, the issuer or an endpoint changes: then it is required again",
    );
    o.write_only = Some(true);
    o
}

pub fn token_opt() -> Object {
    string(
        true,
        0,
        MAX_TOKEN_LEN,
        NO_NUL_PATTERN,
        &format!("A token, {}; empty or null stores none", bytes(MAX_TOKEN_LEN)),
    )
}

pub fn search_text_opt() -> Object {
    string(
        true,
        0,
        MAX_SEARCH_TEXT_LEN,
        printable_pattern(),
        &format!(
            "Case-insensitive free text over login ids, names, email and phone, {}",
            bytes(MAX_SEARCH_TEXT_LEN)
        ),
    )
}

/// The free text of an audit search.
pub fn audit_text_opt() -> Object {
    string(
        true,
        0,
        MAX_SEARCH_TEXT_LEN,
        printable_pattern(),
        &format!("Case-insensitive substring of any field of a record, {}", bytes(MAX_SEARCH_TEXT_LEN)),
    )
}

/// `action`, `actorId`, `tenantId` of an audit event: required, printable, bounded.
pub fn audit_field_req() -> Object {
    string(
        false,
        1,
        MAX_AUDIT_FIELD_LEN,
        printable_pattern(),
        &format!("1 to {}, printable", bytes(MAX_AUDIT_FIELD_LEN)),
    )
}

pub fn audit_field_opt() -> Object {
    string(
        true,
        0,
        MAX_AUDIT_FIELD_LEN,
        printable_pattern(),
        &format!("{}, printable", bytes(MAX_AUDIT_FIELD_LEN)),
    )
}

/// Descope's audit event types.
pub fn audit_type_req() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .enum_values(Some(idvault_core::audit::EVENT_TYPES))
        .description(Some("info, warn or error"))
        .build()
}

/// A management key's name: 1 to 100 printable characters (`idvault_core::project::validate_name`).
pub fn key_name_opt() -> Object {
    string(true, 1, 100, not_blank_pattern(), "1 to 100 characters, printable")
}

// ---- lists ----

fn list_item() -> Object {
    string(false, 1, MAX_FIELD_LEN, printable_pattern(), &format!("1 to {MAX_FIELD_LEN} bytes, printable"))
}

/// Role names, tenant ids, SSO app ids, domains...: at most `MAX_LIST_ITEMS` non-empty values.
pub fn name_list_opt() -> Array {
    array(true, 0, MAX_LIST_ITEMS, list_item(), &format!("At most {MAX_LIST_ITEMS} non-empty values"))
}

pub fn name_list_req() -> Array {
    array(false, 0, MAX_LIST_ITEMS, list_item(), &format!("At most {MAX_LIST_ITEMS} non-empty values"))
}

/// Additional login ids: with the primary one, at most `MAX_LOGIN_IDS`.
pub fn login_id_list_opt() -> Array {
    array(
        true,
        0,
        MAX_LOGIN_IDS - 1,
        login_id_req(),
        &format!("Further login ids; a user has at most {MAX_LOGIN_IDS} login ids"),
    )
}

/// Values of one search filter, where null is not accepted.
pub fn filter_list() -> Array {
    array(
        false,
        0,
        MAX_FILTER_VALUES,
        string(false, 0, MAX_FIELD_LEN, printable_pattern(), &bytes(MAX_FIELD_LEN)),
        &format!("At most {MAX_FILTER_VALUES} values"),
    )
}

/// Per tenant id, the roles a user must have in it (`tenantRoleIds`, `tenantRoleNames`).
pub fn tenant_roles_opt<T: PartialSchema>() -> Object {
    ObjectBuilder::new()
        .schema_type(nullable(Type::Object, true))
        .max_properties(Some(MAX_FILTER_VALUES))
        .property_names(Some(string(false, 1, MAX_FIELD_LEN, printable_pattern(), "A tenant id")))
        .additional_properties(Some(T::schema()))
        .description(Some(format!("At most {MAX_FILTER_VALUES} tenants, by id")))
        .build()
}

/// The user ids of a login history: at most `MAX_LOAD_USERS`.
pub fn history_ids() -> Array {
    array(false, 0, MAX_LOAD_USERS, user_id_item(), &format!("At most {MAX_LOAD_USERS} user ids"))
}

/// Values of one search filter.
pub fn filter_list_opt() -> Array {
    array(
        true,
        0,
        MAX_FILTER_VALUES,
        string(false, 0, MAX_FIELD_LEN, printable_pattern(), &bytes(MAX_FIELD_LEN)),
        &format!("At most {MAX_FILTER_VALUES} values"),
    )
}

pub fn status_list_opt() -> Array {
    array(true, 0, MAX_FILTER_VALUES, status(false), "Any of these statuses")
}

/// User ids of a load or batch delete: at least one, at most `MAX_LOAD_USERS`.
pub fn user_ids_req() -> Array {
    array(false, 1, MAX_LOAD_USERS, user_id_item(), &format!("1 to {MAX_LOAD_USERS} user ids"))
}

pub fn scopes_opt() -> Array {
    array(
        true,
        0,
        MAX_SCOPES,
        string(false, 1, MAX_FIELD_LEN, SCOPE_PATTERN, "A scope, without spaces"),
        &format!("At most {MAX_SCOPES} scopes"),
    )
}

/// `userTenants`: at most `MAX_LIST_ITEMS` memberships.
pub fn user_tenants_opt<T: PartialSchema>() -> Array {
    ArrayBuilder::new()
        .schema_type(nullable(Type::Array, true))
        .items(T::schema())
        .max_items(Some(MAX_LIST_ITEMS))
        .description(Some(format!("At most {MAX_LIST_ITEMS} tenant memberships")))
        .build()
}

/// The users of a batch create: 1 to `MAX_BATCH_USERS`.
pub fn batch_create_users_req() -> Array {
    ArrayBuilder::new()
        .items(Ref::from_schema_name("CreateUserRequest"))
        .min_items(Some(1))
        .max_items(Some(MAX_BATCH_USERS))
        .description(Some(format!("1 to {MAX_BATCH_USERS} users")))
        .build()
}

/// The patches of a batch patch: 1 to `MAX_BATCH_USERS`.
pub fn batch_patch_users_req() -> Array {
    ArrayBuilder::new()
        .items(Ref::from_schema_name("PatchUserRequest"))
        .min_items(Some(1))
        .max_items(Some(MAX_BATCH_USERS))
        .description(Some(format!("1 to {MAX_BATCH_USERS} patches")))
        .build()
}

/// The sort keys of a user search: at most `MAX_SORT_FIELDS`.
pub fn sort_opt<T: PartialSchema>() -> Array {
    ArrayBuilder::new()
        .schema_type(nullable(Type::Array, true))
        .items(T::schema())
        .max_items(Some(MAX_SORT_FIELDS))
        .description(Some(format!("At most {MAX_SORT_FIELDS} sort keys, the first one first")))
        .build()
}

/// The fields a user search sorts by (`idvault_core::user::SortField::parse`).
pub const SORT_FIELDS: [&str; 12] = [
    "name",
    "displayName",
    "givenName",
    "familyName",
    "email",
    "phone",
    "status",
    "userId",
    "loginId",
    "loginIds",
    "createdTime",
    "modifiedTime",
];

pub fn sort_field_req() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(SORT_FIELDS))
        .description(Some("A user field"))
        .build()
}

// ---- numbers ----

fn integer(null: bool, min: i64, max: i64, description: &str) -> Object {
    ObjectBuilder::new()
        .schema_type(nullable(Type::Integer, null))
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64)))
        .minimum(Some(min as f64))
        .maximum(Some(max as f64))
        .description(Some(description))
        .build()
}

pub fn limit_opt() -> Object {
    integer(true, 0, i64::from(SEARCH_MAX_LIMIT), "Page size; absent or 0 means the default")
}

pub fn audit_limit_opt() -> Object {
    integer(true, 0, AUDIT_SEARCH_MAX_LIMIT as i64, "Records per page; absent or 0 means the largest")
}

/// A key's expiry, Unix seconds (up to the year 9999); 0 or absent: none.
pub fn expire_time_opt() -> Object {
    integer(true, 0, 253_402_300_799, "Unix seconds; 0 or absent: never expires")
}

pub fn page_opt() -> Object {
    integer(true, 0, i64::from(u32::MAX), "Page number, from 0")
}

/// A time in Unix milliseconds; absent or 0 means no bound.
pub fn time_ms_opt() -> Object {
    integer(true, -MAX_SAFE_INTEGER, MAX_SAFE_INTEGER, "Unix milliseconds; absent or 0 means no bound")
}

pub fn expiration_opt() -> Object {
    integer(true, 0, MAX_SAFE_INTEGER, "Unix seconds when the access token expires; 0 or absent when unknown")
}

// ---- objects ----

/// Search by custom attributes: at most `MAX_SEARCH_FILTERS` names by the rule of
/// `idvault_core::directory::check_attribute_name`.
pub fn search_attributes_opt() -> Object {
    ObjectBuilder::new()
        .schema_type(nullable(Type::Object, true))
        .max_properties(Some(MAX_SEARCH_FILTERS))
        .property_names(Some(attribute_name_req()))
        .additional_properties(Some(Schema::AnyOf(attribute_value())))
        .description(Some("Attribute values the user must have, by attribute name"))
        .build()
}

/// A custom attribute type: a number from 1 (string) to 6 (date), or a type name.
pub fn attribute_type_req() -> Schema {
    AnyOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1.0)).maximum(Some(6.0)).build())
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["string", "number", "boolean", "singleSelect", "multiSelect", "date"]))
                .build(),
        )
        .description(Some(
            "The type: a number from 1 (string) to 6 (date), or a type name (`string`, `number`, \
             `boolean`, `singleSelect`, `multiSelect`, `date`)",
        ))
        .build()
        .into()
}

/// The allowed values of a custom attribute: strings (Python SDK) or `{value, label}` objects
/// (Node SDK).
pub fn attribute_options() -> Array {
    let item = string(false, 0, MAX_FIELD_LEN, printable_pattern(), "A value");
    ArrayBuilder::new()
        .items(
            AnyOfBuilder::new().item(item.clone()).item(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .property("value", item.clone())
                    .property("label", item)
                    .build(),
            ),
        )
        .max_items(Some(MAX_LIST_ITEMS))
        .description(Some("The allowed values: strings, or `{value, label}` objects"))
        .build()
}

/// The definitions of a custom attribute create: at least one.
pub fn attributes_req<T: PartialSchema>() -> Array {
    ArrayBuilder::new()
        .items(T::schema())
        .min_items(Some(1))
        .max_items(Some(MAX_LIST_ITEMS))
        .description(Some("At least one definition"))
        .build()
}

/// A query parameter (for `IntoParams` written by hand: the derive drops `required` and the
/// description of a parameter whose schema comes from `schema_with`).
/// A query string cannot be null: the `*_opt` schemas lose their `null`.
fn not_null(mut schema: Object) -> Object {
    if let SchemaType::Array(types) = &schema.schema_type {
        let types: Vec<Type> = types.iter().filter(|t| **t != Type::Null).cloned().collect();
        schema.schema_type = SchemaType::from_iter(types);
    }
    if let Some(values) = schema.enum_values.as_mut() {
        values.retain(|v| !v.is_null());
    }
    schema
}

/// One of `loginId` and `userId` is given (core's `UserRef::from_parts`: a non-empty `loginId`
/// wins, else a non-empty `userId`).
pub fn login_or_user_id() -> AnyOf {
    let given = |field: &str| {
        ObjectBuilder::new()
            .property(field, ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)))
            .required(field)
            .build()
    };
    AnyOfBuilder::new()
        .item(given("loginId"))
        .item(given("userId"))
        .description(Some("The user is named by `loginId` or, when it is empty or absent, `userId`"))
        .build()
}

/// Where a provider's token endpoint comes from: given, discovered from the issuer, or a
/// preset's (named by `preset`, or by a `name` that is a preset's).
pub fn provider_endpoint_source() -> AnyOf {
    let given = |field: &str| {
        ObjectBuilder::new()
            .property(field, ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)))
            .required(field)
            .build()
    };
    let presets: Vec<&str> = idvault_core::provider::presets::PRESETS.iter().map(|p| p.name).collect();
    AnyOfBuilder::new()
        .item(given("tokenEndpoint"))
        .item(given("issuer"))
        .item(given("preset"))
        .item(
            ObjectBuilder::new()
                .property("name", ObjectBuilder::new().schema_type(Type::String).enum_values(Some(presets)))
                .required("name")
                .build(),
        )
        .description(Some(
            "The token endpoint is given, discovered from `issuer`, or a preset's (`preset`, or a `name` \
             that is a preset's)",
        ))
        .build()
}

/// The user a query names, as `?loginId=...` or `?userId=...`: one object parameter exploded
/// into its fields (`style: form, explode: true`), the only way OpenAPI can say that one of two
/// query parameters is required.
pub fn user_query() -> Parameter {
    let fields = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("loginId", not_null(login_id_opt()))
        .property("userId", not_null(user_id_opt()))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .build();
    let schema = AllOfBuilder::new().item(fields).item(Schema::AnyOf(login_or_user_id())).build();
    ParameterBuilder::new()
        .name("user")
        .parameter_in(ParameterIn::Query)
        .required(Required::True)
        .style(Some(ParameterStyle::Form))
        .explode(Some(true))
        .description(Some("The user: `loginId=<login id>` or `userId=<user id>`"))
        .schema(Some(Schema::AllOf(schema)))
        .build()
}

pub fn query(name: &str, required: bool, description: &str, schema: Object) -> Parameter {
    let schema = not_null(schema);
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(if required { Required::True } else { Required::False })
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// The user tokens a delete names, as `?appId=...`, `?userId=...` or both: one object parameter
/// exploded into its fields, so that the document can say that one of the two is required.
pub fn app_or_user_query() -> Parameter {
    let given = |field: &str| {
        ObjectBuilder::new()
            .property(field, ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)))
            .required(field)
            .build()
    };
    let fields = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("appId", not_null(app_id_opt()))
        .property("userId", not_null(user_id_opt()))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .build();
    let either = AnyOfBuilder::new()
        .item(given("appId"))
        .item(given("userId"))
        .description(Some("`appId`, `userId` or both (the text `undefined` counts as absent)"))
        .build();
    let schema = AllOfBuilder::new().item(fields).item(Schema::AnyOf(either)).build();
    ParameterBuilder::new()
        .name("tokens")
        .parameter_in(ParameterIn::Query)
        .required(Required::True)
        .style(Some(ParameterStyle::Form))
        .explode(Some(true))
        .description(Some("Whose tokens: `appId=<app id>`, `userId=<user id>`, or both"))
        .schema(Some(Schema::AllOf(schema)))
        .build()
}

/// A path parameter.
pub fn path(name: &str, description: &str, schema: Object) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(not_null(schema)))
        .build()
}

/// Custom attribute values by name: what an attribute of any type can hold (text without NUL,
/// a number, a boolean, null, or a list of texts); the names must be defined attributes.
/// What a custom attribute of any type can hold: text, a number, a boolean, null or a list of
/// texts.
fn attribute_value() -> AnyOf {
    let text = string(false, 0, MAX_FIELD_LEN, NO_NUL_PATTERN, "Text");
    AnyOfBuilder::new()
        .item(text.clone())
        .item(ObjectBuilder::new().schema_type(Type::Number).build())
        .item(ObjectBuilder::new().schema_type(Type::Boolean).build())
        .item(ObjectBuilder::new().schema_type(Type::Null).build())
        .item(ArrayBuilder::new().items(text).max_items(Some(MAX_LIST_ITEMS)).build())
        .build()
}

/// The value of one custom attribute.
pub fn attribute_value_schema() -> Schema {
    let mut value = attribute_value();
    value.description = Some("A value of the attribute's type; null clears it".to_owned());
    Schema::AnyOf(value)
}

pub fn custom_attributes_opt() -> Object {
    let value = attribute_value();
    ObjectBuilder::new()
        .schema_type(nullable(Type::Object, true))
        .property_names(Some(string(false, 1, MAX_FIELD_LEN, not_blank_pattern(), "An attribute name")))
        .additional_properties(Some(Schema::AnyOf(value)))
        .description(Some(format!(
            "Custom attribute values by name, at most {MAX_CUSTOM_ATTRIBUTES_BYTES} bytes as JSON; \
             for users, each name must be a defined custom attribute and each value fit its type"
        )))
        .build()
}

/// An unknown field's value, which the API ignores: a scalar, and text without NUL. (Lists and
/// objects are ignored as well; the schema leaves them out to stay small and inline, which
/// generators handle better than a shared `$ref`.)
pub fn ignored_value() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Number, Type::Boolean, Type::Null]))
        .pattern(Some(NO_NUL_PATTERN))
        .max_length(Some(MAX_BODY_BYTES))
        .description(Some("A field idvault does not use: ignored, but without NUL characters"))
        .build()
}

fn field_name() -> Object {
    string(false, 0, MAX_FIELD_LEN, NO_NUL_PATTERN, "A field name")
}

/// Says, on every object of a request body schema (not on the alternatives of an `anyOf`, which
/// only add requirements), that unknown fields are ignored but must not hold a NUL character.
pub fn ignore_unknown_fields(schema: &mut Schema) {
    match schema {
        Schema::Object(o) => {
            if !o.properties.is_empty() {
                if o.additional_properties.is_none() {
                    o.additional_properties = Some(Box::new(RefOr::T(ignored_value().into()).into()));
                }
                if o.property_names.is_none() {
                    o.property_names = Some(Box::new(field_name().into()));
                }
            }
            for p in o.properties.values_mut() {
                if let RefOr::T(p) = p {
                    ignore_unknown_fields(p);
                }
            }
            if let Some(AdditionalProperties::RefOr(RefOr::T(extra))) = o.additional_properties.as_deref_mut()
            {
                ignore_unknown_fields(extra);
            }
        }
        Schema::Array(a) => {
            if let ArrayItems::RefOrSchema(items) = &mut a.items {
                if let RefOr::T(items) = items.as_mut() {
                    ignore_unknown_fields(items);
                }
            }
        }
        Schema::AllOf(all) => {
            for item in &mut all.items {
                match item {
                    // The alternatives under an `allOf` only add which field is required.
                    RefOr::T(Schema::AnyOf(_)) => {}
                    RefOr::T(item) => ignore_unknown_fields(item),
                    RefOr::Ref(_) => {}
                }
            }
        }
        Schema::AnyOf(any) => {
            for item in &mut any.items {
                if let RefOr::T(item) = item {
                    ignore_unknown_fields(item);
                }
            }
        }
        _ => {}
    }
}

/// Wraps a schema to use it where a `RefOr<Schema>` is expected.
pub fn inline(s: impl Into<Schema>) -> RefOr<Schema> {
    RefOr::T(s.into())
}

// ---- lenient integers ----

/// An optional integer that also accepts a JSON number with a zero fraction (`5.0`): JSON Schema
/// counts it as an integer, and some clients send integers that way.
pub fn opt_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v: Option<serde_json::Number> = Option::deserialize(d)?;
    v.map(|n| integral(&n).ok_or_else(|| serde::de::Error::custom(format!("expected an integer, got {n}"))))
        .transpose()
}

/// An optional JSON value whose integral numbers (`2.0`) are read as integers (`2`).
pub fn opt_value_int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    let v: Option<serde_json::Value> = Option::deserialize(d)?;
    Ok(v.map(|v| match &v {
        serde_json::Value::Number(n) => integral(n).map(serde_json::Value::from).unwrap_or(v),
        _ => v,
    }))
}

/// The integer value of a JSON number that has one (`7`, `7.0`), within i64.
pub fn integral(n: &serde_json::Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    // i64::MAX as f64 rounds up to 2^63, which is out of range: compare with `<`.
    (f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64).then_some(f as i64)
}

// ---- outbound apps ----

/// An outbound app id (`idvault_core::outbound`): a provider name, URL-safe; null or absent on
/// create gives a generated one.
pub fn app_id_opt() -> Object {
    string(
        true,
        0,
        MAX_PROVIDER_NAME_LEN,
        format!("^$|{}", provider_pattern()),
        "An outbound app id: lowercase letters, digits, `-` and `_` (not create, update, delete, connect, bytemplate)",
    )
}

/// Short outbound text (token ids, `grantedBy`, `externalIdentifier`, tenant ids).
pub fn outbound_text_opt() -> Object {
    string(
        true,
        0,
        MAX_OUTBOUND_TEXT_LEN,
        printable_pattern(),
        &format!("Text, {}, no control characters", bytes(MAX_OUTBOUND_TEXT_LEN)),
    )
}

/// An optional absolute http(s) URL (logo, default redirect URL).
pub fn url_opt() -> Object {
    string(true, 0, MAX_URL_LEN, URL_PATTERN, &format!("An absolute http(s) URL, {}", bytes(MAX_URL_LEN)))
}

/// `authorizationUrlParams` / `tokenUrlParams`.
pub fn url_params_opt<T: PartialSchema>() -> Array {
    ArrayBuilder::new()
        .schema_type(nullable(Type::Array, true))
        .items(T::schema())
        .max_items(Some(MAX_APP_URL_PARAMS))
        .description(Some(format!("At most {MAX_APP_URL_PARAMS} parameters")))
        .build()
}

/// The tokens of an outbound batch upload: at most `MAX_BATCH_TOKENS`.
pub fn batch_tokens_req<T: PartialSchema>() -> Array {
    ArrayBuilder::new()
        .items(T::schema())
        .max_items(Some(MAX_BATCH_TOKENS))
        .description(Some(format!("At most {MAX_BATCH_TOKENS} tokens")))
        .build()
}

/// `prompt`: OAuth prompt values.
pub fn prompt_opt() -> Array {
    let item = ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .enum_values(Some(["none", "login", "consent", "select_account"]))
        .build();
    array(true, 0, MAX_APP_URL_PARAMS, item, "OAuth prompt values")
}

/// `accessType`: `offline` or `online`.
pub fn access_type_opt() -> Object {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String, true))
        .enum_values(Some([Some(""), Some("offline"), Some("online"), None]))
        .description(Some("OAuth access type"))
        .build()
}

/// `appType`: idvault extension, `oauth` (the default) or `apikey`.
pub fn app_type_opt() -> Object {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String, true))
        .enum_values(Some([Some(""), Some("oauth"), Some("apikey"), None]))
        .description(Some("idvault extension: `apikey` creates an API-key app; default `oauth`"))
        .build()
}

/// An optional client id (an outbound app may be created before its client is registered).
pub fn client_id_opt() -> Object {
    string(
        true,
        0,
        MAX_FIELD_LEN,
        printable_pattern(),
        &format!("The OAuth client id, {}", bytes(MAX_FIELD_LEN)),
    )
}

// ---- access keys ----

/// An access key id (`idvault_core::access_key`): `K` and 27 alphanumerics.
pub fn access_key_id_req() -> Object {
    use idvault_core::access_key::KEY_ID_LEN;
    string(false, 1, KEY_ID_LEN, "^[A-Za-z0-9]+$", &format!("An access key id ({KEY_ID_LEN} alphanumerics)"))
}

/// The ids of a batch: 1 to `idvault_core::access_key::MAX_BATCH_IDS`.
pub fn access_key_ids_req() -> Array {
    use idvault_core::access_key::MAX_BATCH_IDS;
    array(false, 1, MAX_BATCH_IDS, access_key_id_req(), &format!("1 to {MAX_BATCH_IDS} access key ids"))
}

/// An access key's description.
pub fn access_key_description_opt() -> Object {
    use idvault_core::access_key::MAX_DESCRIPTION_LEN;
    string(
        true,
        0,
        MAX_DESCRIPTION_LEN,
        printable_pattern(),
        &format!("Free text, {}", bytes(MAX_DESCRIPTION_LEN)),
    )
}

/// `permittedIps`: addresses and CIDR ranges.
pub fn permitted_ips_opt() -> Array {
    use idvault_core::access_key::MAX_PERMITTED_IPS;
    let item =
        string(false, 1, 64, "^[0-9A-Fa-f:./]+$", "An IPv4 or IPv6 address, or a CIDR range (`10.0.0.0/8`)");
    array(
        true,
        0,
        MAX_PERMITTED_IPS,
        item,
        &format!("At most {MAX_PERMITTED_IPS} addresses or CIDR ranges the key may be exchanged from; empty or null: anywhere"),
    )
}

/// `expireTime`: Unix seconds, 0 for never.
pub fn access_key_expire_time_opt() -> Object {
    ObjectBuilder::new()
        .schema_type(nullable(Type::Integer, true))
        .minimum(Some(0))
        .maximum(Some(MAX_SAFE_INTEGER))
        .description(Some("Unix seconds after which the key is refused; 0 or null: never"))
        .build()
}

/// Claims added to the session JWT (not the ones the session sets itself).
pub fn custom_claims_opt() -> Object {
    ObjectBuilder::new()
        .schema_type(nullable(Type::Object, true))
        .property_names(Some(string(false, 1, MAX_FIELD_LEN, not_blank_pattern(), "A claim name")))
        .additional_properties(Some(Schema::AnyOf(attribute_value())))
        .description(Some(format!(
            "Claims added to the session JWT, at most {MAX_CUSTOM_ATTRIBUTES_BYTES} bytes as JSON; \
             not sub, iss, aud, exp, iat, nbf, jti, drn, amr, roles, permissions, tenants, dct, sid, gen, dsub"
        )))
        .build()
}

/// `keyTenants`: at most `MAX_LIST_ITEMS` tenants.
pub fn key_tenants_opt<T: PartialSchema>() -> Array {
    ArrayBuilder::new()
        .schema_type(nullable(Type::Array, true))
        .items(T::schema())
        .max_items(Some(MAX_LIST_ITEMS))
        .description(Some(format!("At most {MAX_LIST_ITEMS} tenants, each with its roles")))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integral_numbers() {
        let n = |s: &str| serde_json::from_str::<serde_json::Number>(s).unwrap();
        assert_eq!(integral(&n("5")), Some(5));
        assert_eq!(integral(&n("-140.0")), Some(-140));
        assert_eq!(integral(&n("1.5")), None);
        assert_eq!(integral(&n("1e300")), None);
        assert_eq!(integral(&n("9223372036854775807")), Some(i64::MAX));
    }

    #[test]
    fn enums_are_what_core_parses() {
        for s in STATUSES {
            assert_eq!(idvault_core::user::UserStatus::parse(s).map(|u| u.as_str()).ok(), Some(s));
        }
        for f in SORT_FIELDS {
            assert!(idvault_core::user::SortField::parse(f).is_ok(), "{f}");
        }
    }
}
