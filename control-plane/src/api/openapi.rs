//! The OpenAPI document, assembled from the handlers' own annotations.

use utoipa::openapi::security::{Flow, OAuth2, Password, Scopes, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// Every error body: a message, or for 422 an object of field -> message.
#[derive(ToSchema)]
#[allow(dead_code)] // Documentation only; errors are built in `error.rs`.
pub struct Detail {
    #[schema(value_type = Object)]
    detail: serde_json::Value,
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::new([Flow::Password(Password::new(
                "/api/admin/token",
                Scopes::new(),
            ))])),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Nexpoint",
        description = "Marzban-compatible REST API of the Nexpoint control plane."
    ),
    modifiers(&Security),
    components(schemas(Detail)),
    security(("oauth2" = [])),
    tags(
        (name = "Admin"), (name = "User"), (name = "System"), (name = "Core"), (name = "Node"),
        (name = "Subscription")
    )
)]
pub struct ApiDoc;
