//! Shared application state handed to every handler.

use std::sync::Arc;

use idvault_core::clock::SharedClock;
use idvault_core::project::ProjectService;
use idvault_core::store::SharedStore;
use idvault_core::user::UserService;
use idvault_core::vault::{TokenCipher, VaultService};

#[derive(Clone)]
pub struct AppState {
    pub projects: ProjectService,
    pub users: UserService,
    pub vault: VaultService,
    pub store: SharedStore,
}

impl AppState {
    pub fn new(store: SharedStore, cipher: Arc<dyn TokenCipher>, clock: SharedClock) -> Self {
        let users = UserService::new(store.clone(), clock.clone());
        AppState {
            projects: ProjectService::new(store.clone(), clock.clone()),
            vault: VaultService::new(store.clone(), cipher, users.clone(), clock),
            users,
            store,
        }
    }
}
