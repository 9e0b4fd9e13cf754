//! Shared application state handed to every handler.

use std::sync::Arc;

use idvault_core::access_key::AccessKeyService;
use idvault_core::audit::{Audit, AuditService, AuditSink};
use idvault_core::auth::{AuthService, AuthSettings, SessionSigner};
use idvault_core::clock::SharedClock;
use idvault_core::directory::DirectoryService;
use idvault_core::outbound::OutboundService;
use idvault_core::project::ProjectService;
use idvault_core::provider::{OAuthClient, ProviderService};
use idvault_core::secrets::Cipher;
use idvault_core::store::SharedStore;
use idvault_core::user::UserService;
use idvault_core::vault::{VaultService, VaultSettings};

/// The services, behind one `Arc`: every extractor clones the state, and cloning one `Arc` is a
/// single atomic increment, where cloning the services field by field cost ~13 % of the server's
/// CPU on the hot read paths (dozens of contended reference counts per request).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

pub struct Services {
    pub access_keys: AccessKeyService,
    pub auth: AuthService,
    pub directory: DirectoryService,
    pub projects: ProjectService,
    pub users: UserService,
    pub providers: ProviderService,
    pub vault: VaultService,
    pub outbound: OutboundService,
    pub audit: AuditService,
    pub store: SharedStore,
}

impl AppState {
    /// `audit_sink` receives every audit record the services make (`None`: nothing is recorded).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: SharedStore,
        cipher: Arc<dyn Cipher>,
        signer: Arc<dyn SessionSigner>,
        oauth: Arc<dyn OAuthClient>,
        clock: SharedClock,
        vault_settings: VaultSettings,
        auth_settings: AuthSettings,
        audit_sink: Option<Arc<dyn AuditSink>>,
    ) -> Self {
        let audit = match audit_sink {
            Some(sink) => Audit::new(sink, clock.clone()),
            None => Audit::disabled(clock.clone()),
        };
        let users = UserService::new(store.clone(), clock.clone()).with_audit(audit.clone());
        let providers = ProviderService::new(store.clone(), cipher.clone(), oauth.clone(), clock.clone())
            .with_audit(audit.clone());
        let vault = VaultService::new(
            store.clone(),
            cipher.clone(),
            users.clone(),
            providers.clone(),
            oauth.clone(),
            clock.clone(),
            vault_settings,
        );
        // One refresh machinery (and one set of refresh locks) for provider and outbound tokens.
        let outbound = OutboundService::new(
            store.clone(),
            cipher.clone(),
            providers.clone(),
            users.clone(),
            oauth.clone(),
            vault.refresher(),
            clock.clone(),
            vault_settings.refresh_skew,
        );
        let access_keys = AccessKeyService::new(
            store.clone(),
            signer.clone(),
            users.clone(),
            clock.clone(),
            auth_settings.session_ttl,
        );
        AppState(Arc::new(Services {
            access_keys,
            directory: DirectoryService::new(store.clone(), clock.clone()).with_audit(audit.clone()),
            auth: AuthService::new(
                store.clone(),
                cipher.clone(),
                signer,
                oauth.clone(),
                providers.clone(),
                users.clone(),
                clock.clone(),
                auth_settings,
            ),
            projects: ProjectService::new(store.clone(), clock.clone()).with_audit(audit.clone()),
            audit: AuditService::new(store.clone(), audit, clock.clone()),
            vault,
            outbound,
            providers,
            users,
            store,
        }))
    }
}
