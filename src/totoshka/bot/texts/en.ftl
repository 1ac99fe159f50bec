# Totoshka's English texts; the fallback for every other language.
#
# Syntax: https://projectfluent.org/fluent/guide/ ("id = text"; a value that
# spans lines is indented; { $name } inserts a variable). Numbers pick a plural
# form with a select expression; English has two: [one] and *[other]
# (the star marks the default). Every language file has the same ids and uses
# the same variables (tests/bot/test_texts.py checks it).

## Greeting and help

# $name: the user's first name in Telegram
start =
    Hello, { $name }! 🎨 I am Totoshka: I repaint your photo in the style of a famous painting in a few seconds.

    1. Send me a photo (as a photo, as a file, or an album) — or a GIF, a video, a round video or a sticker.
    2. Pick a style — or «My own style» and send any painting.
    3. Get your picture back, then try another style, make it stronger or weaker, or take the full-size file.

    /styles shows every style, /settings sets size, strength, colours and language, /cancel stops queued work and a clip being painted.
help =
    Send a photo and pick a style. 🖼

    • A photo, an image file (up to 20 MB) or an album works.
    • GIFs, videos and round videos are painted frame by frame (up to { $seconds } s) and come back as they came; still stickers come back as stickers.
    • «My own style»: after the photo, send a painting — or send an album of two: the photo first, the painting second.
    • Under each result: another style, stronger/weaker, the full-resolution file.

    /styles — the gallery
    /settings — output size, strength, colours, language
    /cancel — cancel queued pictures (and a clip being painted) and start over

## The "/" menu

cmd_start = Start and how it works
cmd_help = What I can do
cmd_styles = The gallery of styles
cmd_settings = Size, strength, colours, language
cmd_cancel = Cancel queued pictures

## Picking a style and the buttons under a result

pick_style = Pick a style for this photo:
btn_own_style = 🖌 My own style
btn_gallery = 🖼 Gallery
# $n: the number of a saved painting (1, 2, 3…), a label rather than a count
btn_painting = 🖌 Painting { $n }
btn_another_style = 🎨 Another style
btn_full = 📄 Full resolution
btn_stronger = ➕ Stronger
btn_weaker = ➖ Weaker
btn_mix = 🎭 Mix with…
btn_back = ⬅️ Back

## The status message of one picture

# $position: the place in the queue (1 is next)
status_queued = ⏳ In line: place { $position }.
status_accepted = ⏳ Accepted, putting it in line…
status_lost = 😔 Sorry, I lost this photo while my queue restarted. Please send it again.
status_unqueued = 😔 Sorry, I could not put this photo in line just now. Please send it again in a minute.
# $style: the style's title
status_working = 🎨 Painting in the style «{ $style }»…
# $percent: how much of the clip is painted, 0–99
status_painting_clip = 🎞 Painting in the style «{ $style }»: { $percent }%…
status_done = ✅ Done: «{ $style }».
status_retrying = ⏳ Telegram is busy, sending again shortly…
status_cancelled = ✖️ Cancelled.
# $reason: one of the err_* texts below
status_failed = 😔 Sorry, I could not make this picture: { $reason } Please try again or send another photo.

## Results and the user's own style

own_style_title = your painting
# $style: the result's style title
mix_pick = Mix «{ $style }» with which style?
# $style: the second style's title
mix_share = How much of «{ $style }» goes into the mix?
mix_none = This style has no other styles to mix with.
# $first, $second: style titles; $share: percent of the second, 25–75
mix_title = { $first } + { $second } { $share }%
# $strength: percent, 25–100
result_caption = «{ $style }» · strength { $strength }%
send_painting = Now send me the painting whose style you want (as a photo or an image file). Or pick one of your recent paintings:
send_painting_plain = Now send me the painting whose style you want (as a photo or an image file).
painting_saved = Got the painting — it is saved under «My own style» for next time.
album_own_style = An album of two: I take the first picture as the photo and the second as the painting.
album_first_only = I take the first picture of the album; send the others one at a time.
no_photo = Send me a photo first, then pick a style. 📷
photo_expired = I no longer have that photo — please send it again.

## Limits and /cancel

# $limit: how many pictures one user may have in the works at once
too_many_pending =
    You already have { $limit } { $limit ->
        [one] picture
       *[other] pictures
    } in the works. Wait for { $limit ->
        [one] it
       *[other] them
    } to arrive (or /cancel), then send more.
# $count: how many queued pictures were cancelled (at least 1)
cancelled =
    Cancelled { $count } queued { $count ->
        [one] picture
       *[other] pictures
    }. The conversation is reset — send a new photo whenever you like.
clip_stopping = ⏹ Stopping the clip being painted. The conversation is reset — send something new whenever you like.
nothing_to_cancel = Nothing was queued. The conversation is reset — send a photo whenever you like.
# $size: megabytes, already written with one decimal ("21.0")
file_too_big = That file is { $size } MB; bots can only download files up to 20 MB. Please send a smaller file (a photo can also go as a photo).
not_an_image = That file does not look like an image or a clip. Send a photo, a JPEG/PNG/WebP file, a GIF or an MP4/WebM video.
sticker_animated = I can repaint still stickers only; animated and video stickers are not supported yet. Send a still sticker, a GIF or a video instead.
# $limit: the longest clip in seconds (the operator's setting)
clip_too_long =
    That clip is longer than { $limit } { $limit ->
        [one] second
       *[other] seconds
    }. Please send a shorter one, or trim it first.

## Answers to what is not a photo

text_fallback = I paint photos. 📷 Send me a photo, then pick a style. /help explains more.
voice_fallback = I can't paint sounds. 🎧 Send me a photo instead.
other_fallback = I don't know what to do with that. Send me a photo to paint. 📷
unknown_style = That style is not available any more — pick another one.
strongest = This is already the strongest setting.
weakest = This is already the weakest setting.

## /settings

# $size: "1024 px" or the size_full text; $strength: percent;
# $colors: the yes/no text; $language: the language_name text
settings =
    ⚙️ Settings

    Output size: { $size }
    Strength: { $strength }%
    Keep photo colours: { $colors }
    Language: { $language }
settings_saved = Saved.
size_full = full
yes = yes
no = no
# $size: the output size in pixels ("1024") or the size_full text
btn_size = 📐 { $size }
btn_strength = 💪 { $strength }%
btn_colors_on = 🎨 Keep colours: yes
btn_colors_off = 🎨 Keep colours: no
# the button that switches to the next language, named in that language
btn_language = 🌐 Русский
# this language, named in itself
language_name = English

## The gallery

gallery_intro = The styles I know. Send a photo and pick one of them.
gallery_preparing = Painting the previews, one moment…
gallery_empty = The previews are not ready — the style models are not downloaded yet.

## Why a picture failed (inserted into status_failed as $reason)

err_bad_image = this file is not a picture I can read.
err_image_too_large = the picture is too large.
err_unknown_style = that style is not available.
err_mix_refused = these two styles cannot be mixed.
err_model_missing = the style's model is not available right now.
err_download = I could not download the photo from Telegram.
err_generic = something went wrong on my side.
err_bad_clip = this file is not a clip I can read.
err_clip_too_long =
    the clip is longer than { $limit } { $limit ->
        [one] second
       *[other] seconds
    }.
err_clip_too_big_upload = the painted clip is over the 50 MB that Telegram lets a bot send.
