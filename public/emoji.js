// Emoji shortcodes (":robot:", ":+1:") turned into emoji by a local table: no service, no
// image, just Unicode text. The names follow the common GitHub/Slack/EmojiOne spellings.

export const EMOJI = Object.freeze({
  // faces
  smile: "😄", smiley: "😃", grin: "😁", grinning: "😀", laughing: "😆", satisfied: "😆",
  joy: "😂", rofl: "🤣", sweat_smile: "😅", blush: "😊", slightly_smiling_face: "🙂",
  upside_down_face: "🙃", wink: "😉", innocent: "😇", heart_eyes: "😍", star_struck: "🤩",
  kissing_heart: "😘", yum: "😋", stuck_out_tongue: "😛", stuck_out_tongue_winking_eye: "😜",
  zany_face: "🤪", money_mouth_face: "🤑", hugs: "🤗", hugging: "🤗", thinking: "🤔",
  thinking_face: "🤔", shushing_face: "🤫", zipper_mouth_face: "🤐", raised_eyebrow: "🤨",
  neutral_face: "😐", expressionless: "😑", no_mouth: "😶", smirk: "😏", unamused: "😒",
  roll_eyes: "🙄", grimacing: "😬", relieved: "😌", pensive: "😔", sleepy: "😪",
  sleeping: "😴", mask: "😷", nerd_face: "🤓", nerd: "🤓", sunglasses: "😎", cool: "😎",
  partying_face: "🥳", confused: "😕", worried: "😟", slightly_frowning_face: "🙁",
  frowning: "😦", open_mouth: "😮", astonished: "😲", flushed: "😳", pleading_face: "🥺",
  cry: "😢", sob: "😭", scream: "😱", confounded: "😖", disappointed: "😞", sweat: "😓",
  weary: "😩", tired_face: "😫", yawning_face: "🥱", triumph: "😤", rage: "😡", angry: "😠",
  exploding_head: "🤯", skull: "💀", poop: "💩", hankey: "💩", clown_face: "🤡",
  ghost: "👻", alien: "👽", robot: "🤖", robot_face: "🤖", see_no_evil: "🙈",
  hear_no_evil: "🙉", speak_no_evil: "🙊", smiley_cat: "😺", heart_eyes_cat: "😻",
  // hands and people
  "+1": "👍", thumbsup: "👍", "-1": "👎", thumbsdown: "👎", ok_hand: "👌", wave: "👋",
  clap: "👏", raised_hands: "🙌", pray: "🙏", handshake: "🤝", muscle: "💪", point_up: "☝️",
  point_down: "👇", point_left: "👈", point_right: "👉", v: "✌️", crossed_fingers: "🤞",
  metal: "🤘", call_me_hand: "🤙", raised_hand: "✋", hand: "✋", fist: "✊", punch: "👊",
  facepunch: "👊", writing_hand: "✍️", eyes: "👀", brain: "🧠", shrug: "🤷",
  facepalm: "🤦", man_technologist: "👨‍💻", woman_technologist: "👩‍💻", technologist: "🧑‍💻",
  ninja: "🥷", detective: "🕵️",
  // hearts and symbols
  heart: "❤️", red_heart: "❤️", orange_heart: "🧡", yellow_heart: "💛", green_heart: "💚",
  blue_heart: "💙", purple_heart: "💜", black_heart: "🖤", white_heart: "🤍",
  broken_heart: "💔", sparkling_heart: "💖", two_hearts: "💕", star: "⭐", star2: "🌟",
  sparkles: "✨", zap: "⚡", fire: "🔥", boom: "💥", collision: "💥", "100": "💯",
  check: "✔️", heavy_check_mark: "✔️", white_check_mark: "✅", x: "❌", warning: "⚠️",
  no_entry: "⛔", question: "❓", exclamation: "❗", bangbang: "‼️", bulb: "💡",
  bell: "🔔", zzz: "💤", speech_balloon: "💬", thought_balloon: "💭", lock: "🔒",
  unlock: "🔓", key: "🔑", link: "🔗", recycle: "♻️", infinity: "♾️",
  // celebration and objects
  tada: "🎉", confetti_ball: "🎊", balloon: "🎈", gift: "🎁", trophy: "🏆", medal: "🏅",
  crown: "👑", gem: "💎", rocket: "🚀", airplane: "✈️", car: "🚗", bike: "🚲", ship: "🚢",
  anchor: "⚓", hourglass: "⌛", watch: "⌚", alarm_clock: "⏰", stopwatch: "⏱️",
  calendar: "📅", memo: "📝", pencil: "📝", pencil2: "✏️", book: "📖", books: "📚",
  bookmark: "🔖", paperclip: "📎", pushpin: "📌", scissors: "✂️", package: "📦",
  email: "📧", envelope: "✉️", inbox_tray: "📥", outbox_tray: "📤", phone: "☎️",
  iphone: "📱", computer: "💻", keyboard: "⌨️", desktop_computer: "🖥️", floppy_disk: "💾",
  cd: "💿", camera: "📷", movie_camera: "🎥", tv: "📺", radio: "📻", battery: "🔋",
  electric_plug: "🔌", mag: "🔍", microscope: "🔬", telescope: "🔭", satellite: "📡",
  wrench: "🔧", hammer: "🔨", hammer_and_wrench: "🛠️", gear: "⚙️", nut_and_bolt: "🔩",
  toolbox: "🧰", magnet: "🧲", test_tube: "🧪", dna: "🧬", bug: "🐛", chart_with_upwards_trend: "📈",
  chart_with_downwards_trend: "📉", bar_chart: "📊", clipboard: "📋", file_folder: "📁",
  moneybag: "💰", dollar: "💵", credit_card: "💳", shopping_cart: "🛒", hourglass_flowing_sand: "⏳",
  construction: "🚧", rotating_light: "🚨", checkered_flag: "🏁", triangular_flag_on_post: "🚩",
  art: "🎨", musical_note: "🎵", notes: "🎶", guitar: "🎸", headphones: "🎧",
  video_game: "🎮", game_die: "🎲", dart: "🎯", jigsaw: "🧩",
  // nature, food and weather
  sunny: "☀️", cloud: "☁️", umbrella: "☔", snowflake: "❄️", rainbow: "🌈", ocean: "🌊",
  earth_africa: "🌍", earth_americas: "🌎", earth_asia: "🌏", globe_with_meridians: "🌐",
  full_moon: "🌕", crescent_moon: "🌙", seedling: "🌱", evergreen_tree: "🌲",
  deciduous_tree: "🌳", palm_tree: "🌴", cactus: "🌵", herb: "🌿", four_leaf_clover: "🍀",
  maple_leaf: "🍁", fallen_leaf: "🍂", sunflower: "🌻", rose: "🌹", tulip: "🌷",
  cherry_blossom: "🌸", mushroom: "🍄", dog: "🐶", cat: "🐱", mouse: "🐭", rabbit: "🐰",
  fox_face: "🦊", bear: "🐻", panda_face: "🐼", koala: "🐨", tiger: "🐯", lion: "🦁",
  cow: "🐮", pig: "🐷", frog: "🐸", monkey: "🐒", chicken: "🐔", penguin: "🐧", bird: "🐦",
  owl: "🦉", unicorn: "🦄", bee: "🐝", butterfly: "🦋", snail: "🐌", turtle: "🐢",
  snake: "🐍", octopus: "🐙", crab: "🦀", whale: "🐳", dolphin: "🐬", fish: "🐟",
  shark: "🦈", apple: "🍎", green_apple: "🍏", banana: "🍌", lemon: "🍋", cherries: "🍒",
  strawberry: "🍓", grapes: "🍇", watermelon: "🍉", peach: "🍑", pineapple: "🍍",
  avocado: "🥑", tomato: "🍅", carrot: "🥕", hot_pepper: "🌶️", bread: "🍞",
  croissant: "🥐", cheese: "🧀", egg: "🥚", bacon: "🥓", pizza: "🍕", hamburger: "🍔",
  fries: "🍟", hotdog: "🌭", taco: "🌮", burrito: "🌯", sushi: "🍣", ramen: "🍜",
  spaghetti: "🍝", rice: "🍚", cookie: "🍪", doughnut: "🍩", cake: "🍰", birthday: "🎂",
  ice_cream: "🍨", chocolate_bar: "🍫", candy: "🍬", popcorn: "🍿", coffee: "☕", tea: "🍵",
  beer: "🍺", beers: "🍻", wine_glass: "🍷", cocktail: "🍸", tropical_drink: "🍹",
  champagne: "🍾", clinking_glasses: "🥂",
});

const SHORTCODE = /:([a-z0-9_+-]{1,40}):/gi;

/** text with every known :shortcode: replaced by its emoji; unknown ones stay as typed. */
export function emojify(text) {
  return String(text).replace(SHORTCODE, (whole, name) => {
    const key = name.toLowerCase();
    return Object.hasOwn(EMOJI, key) ? EMOJI[key] : whole;
  });
}

const EMOJI_ONLY = /^(?:\p{Extended_Pictographic}|\p{Emoji_Modifier}|\p{Regional_Indicator}|\u200d|\ufe0f|\s)+$/u;

/** True for short messages made only of emoji (shown larger, as chat apps do). */
export function isEmojiOnly(text) {
  const t = String(text).trim();
  if (t === "" || t.length > 24 || !EMOJI_ONLY.test(t)) return false;
  const count = typeof Intl.Segmenter === "function"
    ? [...new Intl.Segmenter(undefined, { granularity: "grapheme" }).segment(t)]
        .filter((s) => s.segment.trim() !== "").length
    : [...t.replace(/\s/g, "")].length;
  return count <= 3;
}
