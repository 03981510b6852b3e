//! The widget's UI strings per language, keyed by name (a flow's `strings` override them).
//! This table is the one source: the session start sends the strings of the flow's language,
//! and `widget/widget.js` keeps only an English offline fallback, which a test below holds
//! equal to the English column here.

use std::collections::HashMap;

/// Every string the widget shows, by name, in one language.
type Table = &'static [(&'static str, &'static str)];

/// The names every language defines (English is the reference).
const EN: Table = &[
    ("title", "Cancel subscription"),
    ("cancel_now", "Cancel now"),
    ("continue", "Continue"),
    ("back", "Back"),
    ("close", "Close"),
    ("decline_offer", "No thanks"),
    ("accept_offer", "Accept offer"),
    ("confirm_cancel", "Cancel subscription"),
    ("saved_title", "Thanks for staying!"),
    ("saved_body", "Your offer has been applied."),
    ("feedback_placeholder", "Tell us more (optional)"),
    ("submit", "Submit"),
];

const ES: Table = &[
    ("title", "Cancelar suscripción"),
    ("cancel_now", "Cancelar ahora"),
    ("continue", "Continuar"),
    ("back", "Atrás"),
    ("close", "Cerrar"),
    ("decline_offer", "No, gracias"),
    ("accept_offer", "Aceptar oferta"),
    ("confirm_cancel", "Cancelar suscripción"),
    ("saved_title", "¡Gracias por quedarte!"),
    ("saved_body", "Hemos aplicado tu oferta."),
    ("feedback_placeholder", "Cuéntanos más (opcional)"),
    ("submit", "Enviar"),
];

const FR: Table = &[
    ("title", "Résilier l'abonnement"),
    ("cancel_now", "Résilier maintenant"),
    ("continue", "Continuer"),
    ("back", "Retour"),
    ("close", "Fermer"),
    ("decline_offer", "Non merci"),
    ("accept_offer", "Accepter l'offre"),
    ("confirm_cancel", "Résilier l'abonnement"),
    ("saved_title", "Merci de rester !"),
    ("saved_body", "Votre offre a été appliquée."),
    ("feedback_placeholder", "Dites-nous en plus (facultatif)"),
    ("submit", "Envoyer"),
];

const DE: Table = &[
    ("title", "Abo kündigen"),
    ("cancel_now", "Jetzt kündigen"),
    ("continue", "Weiter"),
    ("back", "Zurück"),
    ("close", "Schließen"),
    ("decline_offer", "Nein, danke"),
    ("accept_offer", "Angebot annehmen"),
    ("confirm_cancel", "Abo kündigen"),
    ("saved_title", "Danke, dass Sie bleiben!"),
    ("saved_body", "Ihr Angebot wurde angewendet."),
    ("feedback_placeholder", "Erzählen Sie uns mehr (optional)"),
    ("submit", "Senden"),
];

const PT: Table = &[
    ("title", "Cancelar assinatura"),
    ("cancel_now", "Cancelar agora"),
    ("continue", "Continuar"),
    ("back", "Voltar"),
    ("close", "Fechar"),
    ("decline_offer", "Não, obrigado"),
    ("accept_offer", "Aceitar oferta"),
    ("confirm_cancel", "Cancelar assinatura"),
    ("saved_title", "Obrigado por ficar!"),
    ("saved_body", "Sua oferta foi aplicada."),
    ("feedback_placeholder", "Conte-nos mais (opcional)"),
    ("submit", "Enviar"),
];

fn table(lang: &str) -> Table {
    match lang {
        "es" => ES,
        "fr" => FR,
        "de" => DE,
        "pt" => PT,
        _ => EN,
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
    let mut out: HashMap<String, String> = table(&base)
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (k, v) in overrides {
        out.insert(k.clone(), v.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(t: Table) -> Vec<&'static str> {
        let mut n: Vec<_> = t.iter().map(|(k, _)| *k).collect();
        n.sort_unstable();
        n
    }

    #[test]
    fn every_language_has_every_string_once() {
        let en = names(EN);
        let mut dedup = en.clone();
        dedup.dedup();
        assert_eq!(dedup, en, "a name appears twice in English");
        for lang in LANGUAGES {
            assert_eq!(
                names(table(lang)),
                en,
                "{lang} has other names than English"
            );
            assert!(
                table(lang).iter().all(|(_, v)| !v.trim().is_empty()),
                "{lang}: empty string"
            );
        }
    }

    #[test]
    fn overrides_win_and_regions_fall_back_to_their_language() {
        let mut o = HashMap::new();
        o.insert("title".to_string(), "Wait!".to_string());
        let s = for_language("fr-CA", &o);
        assert_eq!(s["title"], "Wait!");
        assert_eq!(s["cancel_now"], "Résilier maintenant");
        assert_eq!(
            for_language("xx", &HashMap::new())["cancel_now"],
            "Cancel now"
        );
    }

    /// The widget's offline fallback (`DEFAULT_STRINGS` in widget/widget.js, used only if the
    /// session start sent no strings) says what the English table says.
    #[test]
    fn the_widget_fallback_matches_the_english_table() {
        let js = include_str!("../../widget/widget.js");
        let start = js
            .find("const DEFAULT_STRINGS = {")
            .expect("DEFAULT_STRINGS in widget.js");
        let block = &js[start..start + js[start..].find("};").expect("end of DEFAULT_STRINGS")];
        let mut fallback: Vec<(String, String)> = block
            .lines()
            .skip(1)
            .filter_map(|l| {
                let (k, v) = l.trim().trim_end_matches(',').split_once(": ")?;
                let v = v.trim();
                Some((k.to_string(), v[1..v.len() - 1].replace("\\'", "'")))
            })
            .filter(|(k, _)| k != "loading")
            .collect();
        fallback.sort();
        let mut en: Vec<(String, String)> = EN
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        en.sort();
        assert_eq!(fallback, en);
    }
}
