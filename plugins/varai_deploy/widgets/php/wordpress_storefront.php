<?php
/**
 * The VarAI WordPress plugin as a storefront page renders it, for the release's Phase 4 check: the plugin's
 * main file (argv[1], from the published SVN tag) is loaded with the WordPress functions it calls defined as
 * WordPress documents them, then its wp_enqueue_scripts hook and its [varai_discovery] shortcode run.
 * argv[2]: the URL the plugin's folder is served at; stdin: the plugin's saved settings (JSON, with the API
 * key: never on the command line). Prints {"footer": the enqueued scripts' tags, "shortcode": its markup}.
 */

define( 'ABSPATH', __DIR__ . '/' );

$GLOBALS['varai'] = array(
	'options'    => json_decode( stream_get_contents( STDIN ), true ),
	'actions'    => array(),
	'shortcodes' => array(),
	'scripts'    => array(),
	'inline'     => array(),
);

function get_option( $name, $default = false ) {
	return 'varai_ai_discovery' === $name ? $GLOBALS['varai']['options'] : $default;
}
function wp_parse_args( $args, $defaults = array() ) {
	return array_merge( $defaults, (array) $args );
}
function add_action( $hook, $callback, $priority = 10, $accepted_args = 1 ) {
	$GLOBALS['varai']['actions'][ $hook ][] = $callback;
	return true;
}
function add_filter( $hook, $callback, $priority = 10, $accepted_args = 1 ) {
	return true;
}
function add_shortcode( $tag, $callback ) {
	$GLOBALS['varai']['shortcodes'][ $tag ] = $callback;
}
function register_activation_hook( $file, $callback ) {}
function register_deactivation_hook( $file, $callback ) {}
function plugin_basename( $file ) {
	return basename( dirname( $file ) ) . '/' . basename( $file );
}
function plugins_url( $path = '', $plugin = '' ) {
	return rtrim( $GLOBALS['argv'][2], '/' ) . '/' . ltrim( $path, '/' );
}
function wp_enqueue_script( $handle, $src = '', $deps = array(), $ver = false, $args = array() ) {
	$GLOBALS['varai']['scripts'][ $handle ] = $src . ( $ver ? '?ver=' . rawurlencode( $ver ) : '' );
}
function wp_add_inline_script( $handle, $data, $position = 'after' ) {
	$GLOBALS['varai']['inline'][ $handle ][] = $data;
	return true;
}
function wp_json_encode( $data, $options = 0, $depth = 512 ) {
	return json_encode( $data, $options, $depth );
}
function esc_attr( $text ) {
	return htmlspecialchars( (string) $text, ENT_QUOTES, 'UTF-8' );
}
function esc_html( $text ) {
	return esc_attr( $text );
}
function __( $text, $domain = 'default' ) {
	return $text;
}
function shortcode_atts( $pairs, $atts, $shortcode = '' ) {
	return array_merge( $pairs, array_intersect_key( (array) $atts, $pairs ) );
}

require $argv[1];

foreach ( $GLOBALS['varai']['actions']['wp_enqueue_scripts'] ?? array() as $callback ) {
	$callback();
}
$footer = '';
foreach ( $GLOBALS['varai']['scripts'] as $handle => $src ) {
	$footer .= '<script src="' . esc_attr( $src ) . '" id="' . esc_attr( $handle ) . "-js\"></script>\n";
	foreach ( $GLOBALS['varai']['inline'][ $handle ] ?? array() as $code ) {
		$footer .= '<script id="' . esc_attr( $handle ) . '-js-after">' . $code . "</script>\n";
	}
}
$shortcode = $GLOBALS['varai']['shortcodes']['varai_discovery'] ?? null;
echo json_encode( array( 'footer' => $footer, 'shortcode' => $shortcode ? $shortcode( array() ) : '' ) );
