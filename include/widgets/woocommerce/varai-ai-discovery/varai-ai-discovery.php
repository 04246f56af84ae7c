<?php
/**
 * Plugin Name:          VarAI AI Discovery
 * Plugin URI:           https://varai.ai
 * Description:          Adds the VarAI "Find your frames" AI Discovery widget to your WooCommerce store.
 * Version:              __VARAI_VERSION__
 * Requires at least:    6.2
 * Requires PHP:         8.1
 * Requires Plugins:     woocommerce
 * Author:               VarAI
 * Author URI:           https://varai.ai
 * License:              GPL-2.0-or-later
 * License URI:          https://www.gnu.org/licenses/gpl-2.0.html
 * Text Domain:          varai-ai-discovery
 * WC requires at least: 8.0
 * WC tested up to:      9.4
 *
 * @package VarAI_AI_Discovery
 */

defined( 'ABSPATH' ) || exit;

const VARAI_AI_DISCOVERY_VERSION          = '__VARAI_VERSION__';
const VARAI_AI_DISCOVERY_OPTION           = 'varai_ai_discovery';
const VARAI_AI_DISCOVERY_PAGE             = 'varai-ai-discovery';
const VARAI_AI_DISCOVERY_DEFAULT_API_BASE = 'https://api.varai.ai';
// The release's minified widget: the same bytes as the CDN file and the npm package's.
const VARAI_AI_DISCOVERY_SCRIPT = 'assets/js/varai-widget.min.js';

/**
 * The saved settings, with defaults filled in.
 *
 * @return array{api_key: string, api_base: string, floating: string}
 */
function varai_ai_discovery_settings(): array {
	$saved = get_option( VARAI_AI_DISCOVERY_OPTION, array() );
	return wp_parse_args(
		is_array( $saved ) ? $saved : array(),
		array(
			'api_key'  => '',
			'api_base' => VARAI_AI_DISCOVERY_DEFAULT_API_BASE,
			'floating' => '1',
		)
	);
}

/**
 * Sanitizes the settings form.
 *
 * @param mixed $input The submitted values.
 * @return array{api_key: string, api_base: string, floating: string}
 */
function varai_ai_discovery_sanitize( $input ): array {
	$input    = is_array( $input ) ? $input : array();
	$api_base = esc_url_raw( trim( (string) ( $input['api_base'] ?? '' ) ), array( 'https', 'http' ) );
	return array(
		'api_key'  => sanitize_text_field( (string) ( $input['api_key'] ?? '' ) ),
		'api_base' => '' !== $api_base ? untrailingslashit( $api_base ) : VARAI_AI_DISCOVERY_DEFAULT_API_BASE,
		'floating' => empty( $input['floating'] ) ? '0' : '1',
	);
}

/**
 * Registers the setting and its fields (Settings > VarAI AI Discovery).
 */
function varai_ai_discovery_register_settings(): void {
	register_setting(
		VARAI_AI_DISCOVERY_PAGE,
		VARAI_AI_DISCOVERY_OPTION,
		array(
			'type'              => 'array',
			'sanitize_callback' => 'varai_ai_discovery_sanitize',
			'default'           => array(),
		)
	);
	add_settings_section( 'varai_ai_discovery_widget', __( 'Widget', 'varai-ai-discovery' ), '__return_false', VARAI_AI_DISCOVERY_PAGE );
	add_settings_field(
		'varai_ai_discovery_api_key',
		__( 'Widget API key', 'varai-ai-discovery' ),
		'varai_ai_discovery_field_api_key',
		VARAI_AI_DISCOVERY_PAGE,
		'varai_ai_discovery_widget',
		array( 'label_for' => 'varai_ai_discovery_api_key' )
	);
	add_settings_field(
		'varai_ai_discovery_api_base',
		__( 'API base URL', 'varai-ai-discovery' ),
		'varai_ai_discovery_field_api_base',
		VARAI_AI_DISCOVERY_PAGE,
		'varai_ai_discovery_widget',
		array( 'label_for' => 'varai_ai_discovery_api_base' )
	);
	add_settings_field(
		'varai_ai_discovery_floating',
		__( 'Floating button', 'varai-ai-discovery' ),
		'varai_ai_discovery_field_floating',
		VARAI_AI_DISCOVERY_PAGE,
		'varai_ai_discovery_widget',
		array( 'label_for' => 'varai_ai_discovery_floating' )
	);
}
add_action( 'admin_init', 'varai_ai_discovery_register_settings' );

/**
 * The API key field.
 */
function varai_ai_discovery_field_api_key(): void {
	$settings = varai_ai_discovery_settings();
	printf(
		'<input type="text" class="regular-text" id="varai_ai_discovery_api_key" name="%1$s[api_key]" value="%2$s" autocomplete="off" /><p class="description">%3$s</p>',
		esc_attr( VARAI_AI_DISCOVERY_OPTION ),
		esc_attr( $settings['api_key'] ),
		esc_html__( 'The public widget key from your VarAI dashboard. The widget stays hidden until it is set.', 'varai-ai-discovery' )
	);
}

/**
 * The API base URL field.
 */
function varai_ai_discovery_field_api_base(): void {
	$settings = varai_ai_discovery_settings();
	printf(
		'<input type="url" class="regular-text code" id="varai_ai_discovery_api_base" name="%1$s[api_base]" value="%2$s" placeholder="%3$s" />',
		esc_attr( VARAI_AI_DISCOVERY_OPTION ),
		esc_attr( $settings['api_base'] ),
		esc_attr( VARAI_AI_DISCOVERY_DEFAULT_API_BASE )
	);
}

/**
 * The floating-button checkbox.
 */
function varai_ai_discovery_field_floating(): void {
	$settings = varai_ai_discovery_settings();
	printf(
		'<label><input type="checkbox" id="varai_ai_discovery_floating" name="%1$s[floating]" value="1" %2$s /> %3$s</label>',
		esc_attr( VARAI_AI_DISCOVERY_OPTION ),
		checked( '1', $settings['floating'], false ),
		esc_html__( 'Show a floating "Find your frames" button on pages without the [varai_discovery] shortcode.', 'varai-ai-discovery' )
	);
}

/**
 * Adds Settings > VarAI AI Discovery.
 */
function varai_ai_discovery_admin_menu(): void {
	add_options_page(
		__( 'VarAI AI Discovery', 'varai-ai-discovery' ),
		__( 'VarAI AI Discovery', 'varai-ai-discovery' ),
		'manage_options',
		VARAI_AI_DISCOVERY_PAGE,
		'varai_ai_discovery_render_settings_page'
	);
}
add_action( 'admin_menu', 'varai_ai_discovery_admin_menu' );

/**
 * Renders the settings page.
 */
function varai_ai_discovery_render_settings_page(): void {
	if ( ! current_user_can( 'manage_options' ) ) {
		return;
	}
	echo '<div class="wrap"><h1>' . esc_html( get_admin_page_title() ) . '</h1><form action="options.php" method="post">';
	settings_fields( VARAI_AI_DISCOVERY_PAGE );
	do_settings_sections( VARAI_AI_DISCOVERY_PAGE );
	submit_button();
	echo '</form></div>';
}

/**
 * Adds a Settings link on the Plugins screen.
 *
 * @param string[] $links The plugin's action links.
 * @return string[]
 */
function varai_ai_discovery_action_links( array $links ): array {
	$url = admin_url( 'options-general.php?page=' . VARAI_AI_DISCOVERY_PAGE );
	array_unshift( $links, '<a href="' . esc_url( $url ) . '">' . esc_html__( 'Settings', 'varai-ai-discovery' ) . '</a>' );
	return $links;
}
add_filter( 'plugin_action_links_' . plugin_basename( __FILE__ ), 'varai_ai_discovery_action_links' );

/**
 * Enqueues the widget on the storefront once an API key is set.
 */
function varai_ai_discovery_enqueue(): void {
	$settings = varai_ai_discovery_settings();
	if ( '' === $settings['api_key'] ) {
		return;
	}
	wp_enqueue_script(
		'varai-ai-discovery',
		plugins_url( VARAI_AI_DISCOVERY_SCRIPT, __FILE__ ),
		array(),
		VARAI_AI_DISCOVERY_VERSION,
		array( 'in_footer' => true )
	);
	if ( '1' === $settings['floating'] ) {
		$config = array(
			'apiKey'  => $settings['api_key'],
			'apiBase' => $settings['api_base'],
		);
		// Pages with a [varai_discovery] placeholder get the widget there instead (the script sets those up itself).
		wp_add_inline_script(
			'varai-ai-discovery',
			'if (window.VaraiWidget && !document.querySelector("[data-varai-widget]")) { window.VaraiWidget.init(' . wp_json_encode( $config, JSON_HEX_TAG | JSON_HEX_AMP ) . '); }',
			'after'
		);
	}
}
add_action( 'wp_enqueue_scripts', 'varai_ai_discovery_enqueue' );

/**
 * The [varai_discovery label="Find your frames"] shortcode: the widget, placed in the content.
 *
 * @param array|string $atts The shortcode attributes.
 * @return string
 */
function varai_ai_discovery_shortcode( $atts ): string {
	$settings = varai_ai_discovery_settings();
	if ( '' === $settings['api_key'] ) {
		return '';
	}
	$atts = shortcode_atts( array( 'label' => __( 'Find your frames', 'varai-ai-discovery' ) ), $atts, 'varai_discovery' );
	return sprintf(
		'<div class="varai-discovery" data-varai-widget data-varai-api-key="%1$s" data-varai-api-base="%2$s" data-varai-label="%3$s"></div>',
		esc_attr( $settings['api_key'] ),
		esc_attr( $settings['api_base'] ),
		esc_attr( $atts['label'] )
	);
}
add_shortcode( 'varai_discovery', 'varai_ai_discovery_shortcode' );

/**
 * Declares compatibility with WooCommerce's High-Performance Order Storage (the plugin stores no orders).
 */
function varai_ai_discovery_declare_wc_compatibility(): void {
	if ( class_exists( \Automattic\WooCommerce\Utilities\FeaturesUtil::class ) ) {
		\Automattic\WooCommerce\Utilities\FeaturesUtil::declare_compatibility( 'custom_order_tables', __FILE__, true );
	}
}
add_action( 'before_woocommerce_init', 'varai_ai_discovery_declare_wc_compatibility' );
