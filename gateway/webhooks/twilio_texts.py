"""What the gateway says on SMS and on the phone, in French and English.

Kept short: an SMS reply is one segment where possible, and every spoken sentence is heard
once. ``{city}``, ``{code}``, ``{status}``, ``{category}`` are filled in by the webhook.
"""

TEXTS = {
    "fr": {
        "acknowledged": "{city} 311 : demande reçue. Votre numéro de suivi est {code}. "
                        "Pour le suivi, écrivez STATUT {code}.",
        "added": "{city} 311 : message ajouté à votre demande {code}.",
        "empty": "{city} 311 : votre message est vide. Décrivez le problème et son adresse en quelques mots.",
        "status_line": "{code} : {status} ({category})",
        "status_none": "{city} 311 : aucune demande ouverte à ce numéro. Pour une autre demande, "
                       "écrivez STATUT suivi de son numéro.",
        "status_unknown": "{city} 311 : nous ne trouvons pas ce numéro de suivi. Vérifiez-le (ex. : R-2026-0000000).",
        "greeting": "Bonjour, vous avez joint le 311 de la {city}. Pour le français, faites le 1 ou dites français.",
        "describe": "Après le signal, décrivez le problème et indiquez l'adresse. Puis attendez.",
        "voicemail": "Vous pouvez aussi laisser un message après le bip, puis raccrocher.",
        "code_before": "Merci. Votre demande est enregistrée. Votre numéro de suivi est le :",
        "code_sms": "Vous recevrez aussi ce numéro par texto. Au revoir.",
        "code_after": "Au revoir.",
        "nothing_recorded": "Nous n'avons pas reçu de message. Rappelez-nous au besoin. Au revoir.",
    },
    "en": {
        "acknowledged": "{city} 311: request received. Your tracking code is {code}. "
                        "To follow it, text STATUS {code}.",
        "added": "{city} 311: message added to your request {code}.",
        "empty": "{city} 311: your message is empty. Please describe the problem and its address in a few words.",
        "status_line": "{code}: {status} ({category})",
        "status_none": "{city} 311: no open request for this number. For another request, text STATUS "
                       "followed by its tracking code.",
        "status_unknown": "{city} 311: we cannot find this tracking code. Please check it (e.g. R-2026-0000000).",
        "greeting": "For English, press 2 or say English.",
        "describe": "After the tone, describe the problem and give the address. Then wait.",
        "voicemail": "You can also leave a message after the beep, then hang up.",
        "code_before": "Thank you. Your request is recorded. Your tracking code is:",
        "code_sms": "You will also receive this code by text message. Goodbye.",
        "code_after": "Goodbye.",
        "nothing_recorded": "We did not receive a message. Please call again if needed. Goodbye.",
    },
}
