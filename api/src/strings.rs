//! The widget's UI strings per language (a flow's `strings` override them).

use std::collections::HashMap;

const KEYS: &[&str] = &[
    "title",
    "cancel_now",
    "continue",
    "back",
    "close",
    "decline_offer",
    "accept_offer",
    "confirm_cancel",
    "saved_title",
    "saved_body",
    "feedback_placeholder",
    "submit",
];

fn table(lang: &str) -> [&'static str; 12] {
    match lang {
        "es" => [
            "Cancelar suscripción",
            "Cancelar ahora",
            "Continuar",
            "Atrás",
            "Cerrar",
            "No, gracias",
            "Aceptar oferta",
            "Cancelar suscripción",
            "¡Gracias por quedarte!",
            "Hemos aplicado tu oferta.",
            "Cuéntanos más (opcional)",
            "Enviar",
        ],
        "fr" => [
            "Résilier l'abonnement",
            "Résilier maintenant",
            "Continuer",
            "Retour",
            "Fermer",
            "Non merci",
            "Accepter l'offre",
            "Résilier l'abonnement",
            "Merci de rester !",
            "Votre offre a été appliquée.",
            "Dites-nous en plus (facultatif)",
            "Envoyer",
        ],
        "de" => [
            "Abo kündigen",
            "Jetzt kündigen",
            "Weiter",
            "Zurück",
            "Schließen",
            "Nein, danke",
            "Angebot annehmen",
            "Abo kündigen",
            "Danke, dass Sie bleiben!",
            "Ihr Angebot wurde angewendet.",
            "Erzählen Sie uns mehr (optional)",
            "Senden",
        ],
        "pt" => [
            "Cancelar assinatura",
            "Cancelar agora",
            "Continuar",
            "Voltar",
            "Fechar",
            "Não, obrigado",
            "Aceitar oferta",
            "Cancelar assinatura",
            "Obrigado por ficar!",
            "Sua oferta foi aplicada.",
            "Conte-nos mais (opcional)",
            "Enviar",
        ],
        _ => [
            "Cancel subscription",
            "Cancel now",
            "Continue",
            "Back",
            "Close",
            "No thanks",
            "Accept offer",
            "Cancel subscription",
            "Thanks for staying!",
            "Your offer has been applied.",
            "Tell us more (optional)",
            "Submit",
        ],
    }
}

/// Languages with built-in strings.
pub const LANGUAGES: &[&str] = &["en", "es", "fr", "de", "pt"];

pub fn for_language(lang: &str, overrides: &HashMap<String, String>) -> HashMap<String, String> {
    let base = lang
        .split(['-', '_'])
        .next()
        .unwrap_or("en")
        .to_ascii_lowercase();
    let mut out: HashMap<String, String> = KEYS
        .iter()
        .zip(table(&base))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (k, v) in overrides {
        out.insert(k.clone(), v.clone());
    }
    out
}
