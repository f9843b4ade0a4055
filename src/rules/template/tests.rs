//! Renderings checked against promtool: every expected string below is what Prometheus
//! printed for the same template and data.

use super::*;

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

/// Renders as Prometheus fills an annotation of rule `T` (errors included), the form
/// promtool printed for the expectations below.
fn expand(template: &str, labels: &[(String, String)], value: f64) -> String {
    let data = TemplateData {
        labels,
        external_labels: &[],
        value,
        external_url: "",
    };
    expand_for_alert("T", template, &data)
}

#[test]
fn value_formatting_matches_promtool() {
    let labels = labels(&[("__name__", "m"), ("instance", "h:9100"), ("job", "node")]);
    for (template, expected) in VALUE_CASES {
        for (value, expected) in VALUES.iter().zip(expected) {
            assert_eq!(
                expand(template, &labels, *value),
                *expected,
                "{template} with $value {value}"
            );
        }
    }
}

#[test]
fn templates_match_promtool() {
    let node = labels(&[("__name__", "m"), ("instance", "h3:9100"), ("job", "node")]);
    for (template, expected) in NODE_CASES {
        assert_eq!(expand(template, &node, 3.5), *expected, "{template}");
    }
    let num = labels(&[
        ("__name__", "m"),
        ("instance", "h1:9100"),
        ("job", "node"),
        ("num", "2.5"),
    ]);
    for (template, expected) in NUM_CASES {
        assert_eq!(expand(template, &num, 2.5), *expected, "{template}");
    }
}

#[test]
fn render_reports_the_failing_action() {
    let data = TemplateData {
        labels: &[],
        external_labels: &[],
        value: 1.0,
        external_url: "http://prom:9090",
    };
    assert_eq!(
        render("{{ $externalURL }}/x", &data).as_deref(),
        Ok("http://prom:9090/x")
    );
    assert_eq!(
        render("{{ if gt $value 1 }}x{{ end }}", &data),
        Err(
            "1:118: executing at <gt $value 1>: error calling gt: incompatible types \
             for comparison"
                .to_owned()
        )
    );
}

#[test]
fn labels_are_sorted_and_external_labels_available() {
    let labels = labels(&[("job", "b"), ("instance", "a")]);
    let external = [("cluster".to_owned(), "prod".to_owned())];
    let data = TemplateData {
        labels: &labels,
        external_labels: &external,
        value: 0.0,
        external_url: "",
    };
    assert_eq!(
        render("{{ $labels }} {{ $externalLabels.cluster }}", &data).as_deref(),
        Ok("map[instance:a job:b] prod")
    );
}

#[test]
fn check_accepts_community_forms_and_refuses_the_rest() {
    assert!(check("{{ $labels.instance }} at {{ $value | humanizePercentage }}").is_ok());
    assert!(check("VALUE = {{ $value }}\n  LABELS = {{ $labels }}").is_ok());
    assert!(check(r#"{{ printf "%.2f" $value }} {{ $value | printf "%.0f" }}"#).is_ok());
    assert!(check("{{ if gt $value 1.0 }}big{{ else if lt $value 0.0 }}neg{{ end }}").is_ok());
    assert!(check("{{ range $k, $v := $labels }}{{ $k }}{{ end }}").is_ok());
    for (template, reason) in [
        ("{{ if nosuch $value }}x{{ end }}", "not defined"),
        ("{{ $value | query }}", "query engine"),
        (
            "{{ with query \"up\" }}{{ . | first | value }}{{ end }}",
            "query engine",
        ),
        ("{{ $value ", "unclosed action"),
        ("{{ if true }}x", "unexpected EOF"),
        ("{{ end }}", "unexpected {{end}}"),
        ("{{ $nosuch }}", "undefined variable"),
        ("{{ template \"x\" }}", "not supported"),
        ("{{ 1x }}", "bad number syntax"),
    ] {
        let error = check(template).expect_err(template);
        assert!(error.contains(reason), "{template}: {error}");
    }
}

#[test]
fn trim_markers_need_a_space_and_numbers_may_be_negative() {
    let data = TemplateData {
        labels: &[],
        external_labels: &[],
        value: 0.0,
        external_url: "",
    };
    assert_eq!(render("a {{- 3 -}} b", &data).as_deref(), Ok("a3b"));
    assert_eq!(render("a {{-3}} b", &data).as_deref(), Ok("a -3 b"));
}

/// The values every `VALUE_CASES` template is rendered with.
const VALUES: [f64; 17] = [
    0.0,
    0.5,
    2.5,
    -1.5,
    59.99,
    1023.0,
    176461.5,
    1000000.0,
    123456789.0,
    1e21,
    1e300,
    0.000012345,
    -0.002,
    -90061.0,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
];
/// promtool 2.42 output for templates over `$value`, one expectation per `VALUES` entry.
const VALUE_CASES: &[(&str, [&str; 17])] = &[
    (
        "{{ $value }}",
        [
            "0",
            "0.5",
            "2.5",
            "-1.5",
            "59.99",
            "1023",
            "176461.5",
            "1e+06",
            "1.23456789e+08",
            "1e+21",
            "1e+300",
            "1.2345e-05",
            "-0.002",
            "-90061",
            "NaN",
            "+Inf",
            "-Inf",
        ],
    ),
    (
        "{{ $value | humanize }}",
        [
            "0", "500m", "2.5", "-1.5", "59.99", "1.023k", "176.5k", "1M", "123.5M", "1Z",
            "1e+276Y", "12.35u", "-2m", "-90.06k", "NaN", "+Inf", "-Inf",
        ],
    ),
    (
        "{{ humanize1024 $value }}",
        [
            "0",
            "0.5",
            "2.5",
            "-1.5",
            "59.99",
            "1023",
            "172.3ki",
            "976.6ki",
            "117.7Mi",
            "867.4Ei",
            "8.272e+275Yi",
            "1.234e-05",
            "-0.002",
            "-87.95ki",
            "NaN",
            "+Inf",
            "-Inf",
        ],
    ),
    (
        "{{ $value | humanizePercentage }}",
        [
            "0%",
            "50%",
            "250%",
            "-150%",
            "5999%",
            "1.023e+05%",
            "1.765e+07%",
            "1e+08%",
            "1.235e+10%",
            "1e+23%",
            "1e+302%",
            "0.001234%",
            "-0.2%",
            "-9.006e+06%",
            "NaN%",
            "+Inf%",
            "-Inf%",
        ],
    ),
    (
        "{{ $value | humanizeDuration }}",
        [
            "0s",
            "500ms",
            "2.5s",
            "-1.5s",
            "59.99s",
            "17m 3s",
            "2d 1h 1m 1s",
            "11d 13h 46m 40s",
            "1428d 21h 33m 9s",
            "-106751991167300d -15h -30m -8s",
            "-106751991167300d -15h -30m -8s",
            "12.35us",
            "-2ms",
            "-1d 1h 1m 1s",
            "NaN",
            "+Inf",
            "-Inf",
        ],
    ),
    (
        "{{ $value | humanizeTimestamp }}",
        [
            "1970-01-01 00:00:00 +0000 UTC",
            "1970-01-01 00:00:00.5 +0000 UTC",
            "1970-01-01 00:00:02.5 +0000 UTC",
            "1969-12-31 23:59:58.5 +0000 UTC",
            "1970-01-01 00:00:59.99 +0000 UTC",
            "1970-01-01 00:17:03 +0000 UTC",
            "1970-01-03 01:01:01.5 +0000 UTC",
            "1970-01-12 13:46:40 +0000 UTC",
            "1973-11-29 21:33:09 +0000 UTC",
            "<error expanding template: error executing template __alert_T: template: __alert_T:1:124: executing \"__alert_T\" at <humanizeTimestamp>: error calling humanizeTimestamp: 1e+21 cannot be represented as a nanoseconds timestamp since it overflows int64>",
            "<error expanding template: error executing template __alert_T: template: __alert_T:1:124: executing \"__alert_T\" at <humanizeTimestamp>: error calling humanizeTimestamp: 1e+300 cannot be represented as a nanoseconds timestamp since it overflows int64>",
            "1970-01-01 00:00:00 +0000 UTC",
            "1969-12-31 23:59:59.998 +0000 UTC",
            "1969-12-30 22:58:59 +0000 UTC",
            "NaN",
            "+Inf",
            "-Inf",
        ],
    ),
    (
        "{{ printf \"%.2f\" $value }}",
        [
            "0.00",
            "0.50",
            "2.50",
            "-1.50",
            "59.99",
            "1023.00",
            "176461.50",
            "1000000.00",
            "123456789.00",
            "1000000000000000000000.00",
            "1000000000000000052504760255204420248704468581108159154915854115511802457988908195786371375080447864043704443832883878176942523235360430575644792184786706982848387200926575803737830233794788090059368953234970799945081119038967640880074652742780142494579258788820056842838115669472196386865459400540160.00",
            "0.00",
            "-0.00",
            "-90061.00",
            "NaN",
            "+Inf",
            "-Inf",
        ],
    ),
    (
        "{{ $value | printf \"%.0f\" }}",
        [
            "0",
            "0",
            "2",
            "-2",
            "60",
            "1023",
            "176462",
            "1000000",
            "123456789",
            "1000000000000000000000",
            "1000000000000000052504760255204420248704468581108159154915854115511802457988908195786371375080447864043704443832883878176942523235360430575644792184786706982848387200926575803737830233794788090059368953234970799945081119038967640880074652742780142494579258788820056842838115669472196386865459400540160",
            "0",
            "-0",
            "-90061",
            "NaN",
            "+Inf",
            "-Inf",
        ],
    ),
    (
        "{{ printf \"%v\" $value }}",
        [
            "0",
            "0.5",
            "2.5",
            "-1.5",
            "59.99",
            "1023",
            "176461.5",
            "1e+06",
            "1.23456789e+08",
            "1e+21",
            "1e+300",
            "1.2345e-05",
            "-0.002",
            "-90061",
            "NaN",
            "+Inf",
            "-Inf",
        ],
    ),
    (
        "{{ printf \"%e\" $value }}",
        [
            "0.000000e+00",
            "5.000000e-01",
            "2.500000e+00",
            "-1.500000e+00",
            "5.999000e+01",
            "1.023000e+03",
            "1.764615e+05",
            "1.000000e+06",
            "1.234568e+08",
            "1.000000e+21",
            "1.000000e+300",
            "1.234500e-05",
            "-2.000000e-03",
            "-9.006100e+04",
            "NaN",
            "+Inf",
            "-Inf",
        ],
    ),
    (
        "{{ printf \"%.3e\" $value }}",
        [
            "0.000e+00",
            "5.000e-01",
            "2.500e+00",
            "-1.500e+00",
            "5.999e+01",
            "1.023e+03",
            "1.765e+05",
            "1.000e+06",
            "1.235e+08",
            "1.000e+21",
            "1.000e+300",
            "1.234e-05",
            "-2.000e-03",
            "-9.006e+04",
            "NaN",
            "+Inf",
            "-Inf",
        ],
    ),
    (
        "{{ printf \"%8.2f|%-8.2f|%08.2f|%+.1f\" $value $value $value $value }}",
        [
            "    0.00|0.00    |00000.00|+0.0",
            "    0.50|0.50    |00000.50|+0.5",
            "    2.50|2.50    |00002.50|+2.5",
            "   -1.50|-1.50   |-0001.50|-1.5",
            "   59.99|59.99   |00059.99|+60.0",
            " 1023.00|1023.00 |01023.00|+1023.0",
            "176461.50|176461.50|176461.50|+176461.5",
            "1000000.00|1000000.00|1000000.00|+1000000.0",
            "123456789.00|123456789.00|123456789.00|+123456789.0",
            "1000000000000000000000.00|1000000000000000000000.00|1000000000000000000000.00|+1000000000000000000000.0",
            "1000000000000000052504760255204420248704468581108159154915854115511802457988908195786371375080447864043704443832883878176942523235360430575644792184786706982848387200926575803737830233794788090059368953234970799945081119038967640880074652742780142494579258788820056842838115669472196386865459400540160.00|1000000000000000052504760255204420248704468581108159154915854115511802457988908195786371375080447864043704443832883878176942523235360430575644792184786706982848387200926575803737830233794788090059368953234970799945081119038967640880074652742780142494579258788820056842838115669472196386865459400540160.00|1000000000000000052504760255204420248704468581108159154915854115511802457988908195786371375080447864043704443832883878176942523235360430575644792184786706982848387200926575803737830233794788090059368953234970799945081119038967640880074652742780142494579258788820056842838115669472196386865459400540160.00|+1000000000000000052504760255204420248704468581108159154915854115511802457988908195786371375080447864043704443832883878176942523235360430575644792184786706982848387200926575803737830233794788090059368953234970799945081119038967640880074652742780142494579258788820056842838115669472196386865459400540160.0",
            "    0.00|0.00    |00000.00|+0.0",
            "   -0.00|-0.00   |-0000.00|-0.0",
            "-90061.00|-90061.00|-90061.00|-90061.0",
            "     NaN|NaN     |     NaN|+NaN",
            "    +Inf|+Inf    |    +Inf|+Inf",
            "    -Inf|-Inf    |    -Inf|-Inf",
        ],
    ),
    (
        "{{ printf \"%d\" $value }}",
        [
            "%!d(float64=0)",
            "%!d(float64=0.5)",
            "%!d(float64=2.5)",
            "%!d(float64=-1.5)",
            "%!d(float64=59.99)",
            "%!d(float64=1023)",
            "%!d(float64=176461.5)",
            "%!d(float64=1e+06)",
            "%!d(float64=1.23456789e+08)",
            "%!d(float64=1e+21)",
            "%!d(float64=1e+300)",
            "%!d(float64=1.2345e-05)",
            "%!d(float64=-0.002)",
            "%!d(float64=-90061)",
            "%!d(float64=NaN)",
            "%!d(float64=+Inf)",
            "%!d(float64=-Inf)",
        ],
    ),
    (
        "{{ printf \"%s\" $value }}",
        [
            "%!s(float64=0)",
            "%!s(float64=0.5)",
            "%!s(float64=2.5)",
            "%!s(float64=-1.5)",
            "%!s(float64=59.99)",
            "%!s(float64=1023)",
            "%!s(float64=176461.5)",
            "%!s(float64=1e+06)",
            "%!s(float64=1.23456789e+08)",
            "%!s(float64=1e+21)",
            "%!s(float64=1e+300)",
            "%!s(float64=1.2345e-05)",
            "%!s(float64=-0.002)",
            "%!s(float64=-90061)",
            "%!s(float64=NaN)",
            "%!s(float64=+Inf)",
            "%!s(float64=-Inf)",
        ],
    ),
    (
        "{{ printf \"%.4g\" $value }}",
        [
            "0",
            "0.5",
            "2.5",
            "-1.5",
            "59.99",
            "1023",
            "1.765e+05",
            "1e+06",
            "1.235e+08",
            "1e+21",
            "1e+300",
            "1.234e-05",
            "-0.002",
            "-9.006e+04",
            "NaN",
            "+Inf",
            "-Inf",
        ],
    ),
    (
        "{{ printf \"%10.3g|\" $value }}",
        [
            "         0|",
            "       0.5|",
            "       2.5|",
            "      -1.5|",
            "        60|",
            "  1.02e+03|",
            "  1.76e+05|",
            "     1e+06|",
            "  1.23e+08|",
            "     1e+21|",
            "    1e+300|",
            "  1.23e-05|",
            "    -0.002|",
            " -9.01e+04|",
            "       NaN|",
            "      +Inf|",
            "      -Inf|",
        ],
    ),
    (
        "{{ if gt $value 1.0 }}big{{ else if lt $value 0.0 }}neg{{ else }}small{{ end }}",
        [
            "small", "small", "big", "neg", "big", "big", "big", "big", "big", "big", "big",
            "small", "neg", "neg", "big", "big", "neg",
        ],
    ),
];
/// promtool 2.42 output with the `node` fixture: (template, expected).
const NODE_CASES: &[(&str, &str)] = &[
    ("{{ .Value }}", "3.5"),
    ("{{ printf \"%g\" $value }}", "3.5"),
    (
        "{{ if gt $value 1 }}x{{ end }}",
        "<error expanding template: error executing template __alert_T: template: __alert_T:1:118: executing \"__alert_T\" at <gt $value 1>: error calling gt: incompatible types for comparison>",
    ),
    ("{{ if eq $labels.job \"node\" }}node{{ end }}", "node"),
    (
        "{{ with $labels.instance }}inst={{ . }}{{ else }}none{{ end }}",
        "inst=h3:9100",
    ),
    ("{{ $labels.instance | stripPort }}", "h3"),
    (
        "{{ toUpper $labels.job }} {{ toLower \"ABC\" }} {{ title \"hello world-foo bar_baz\" }}",
        "NODE abc Hello World-Foo Bar_baz",
    ),
    ("{{ reReplaceAll \":.*\" \"\" $labels.instance }}", "h3"),
    (
        "{{ reReplaceAll \"(.+):(\\\\d+)\" \"$2-$1\" $labels.instance }}",
        "9100-h3",
    ),
    (
        "{{ if match \"^a\" $labels.instance }}starts-a{{ end }}",
        "",
    ),
    ("  {{- $labels.job -}}  x  {{- \"y\" }}  ", "nodexy  "),
    (
        "{{ $externalURL }}|{{ $externalLabels }}|{{ .ExternalURL }}",
        "|map[]|",
    ),
    ("{{ printf \"%q\" $labels.instance }}", "\"h3:9100\""),
    ("{{ $labels.instance }}{{/* comment */}}!", "h3:9100!"),
    ("{{ (printf \"%.1f\" $value) }}", "3.5"),
    ("{{ humanize \"1234567\" }}", "1.235M"),
    ("{{ humanize 1024 }}", "1.024k"),
    (
        "{{ 3 }} {{ 1.5 }} {{ \"s\" }} {{ true }} {{ 1e3 }} {{ 0x10 }}",
        "3 1.5 s true 1000 16",
    ),
    (
        "{{ and $labels.job $labels.instance }}|{{ or $labels.nosuch \"default\" }}|{{ not true }}",
        "h3:9100|default|false",
    ),
    (
        "{{ $x := 5 }}{{ $x }}{{ if true }}{{ $x = 6 }}{{ end }}{{ $x }}",
        "56",
    ),
    (
        "{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}",
        "__name__=m;instance=h3:9100;job=node;",
    ),
    ("{{ index $labels \"job\" }}", "node"),
    ("{{ len $labels }}", "3"),
    ("{{ print $value \"a\" 1 2 }}", "3.5a1 2"),
    ("{{ println \"a\" }}", "a\n"),
    ("{{ safeHtml \"<b>\" }}", "<b>"),
    (
        "{{ printf \"%5s|%-5s|%.2s\" \"ab\" \"cd\" \"efgh\" }}",
        "   ab|cd   |ef",
    ),
    ("{{ printf \"%d%%\" 5 }}", "5%"),
    ("{{ printf \"%x %X %o %b\" 255 255 8 5 }}", "ff FF 10 101"),
    (
        "{{ printf \"%v %v\" $labels true }}",
        "map[__name__:m instance:h3:9100 job:node] true",
    ),
    ("{{ printf \"%s\" }}", "%!s(MISSING)"),
    ("{{ printf \"%s\" \"a\" \"b\" }}", "a%!(EXTRA string=b)"),
    ("{{ $value | humanize | printf \"%s!\" }}", "3.5!"),
    ("{{ humanizePercentage 0.123456 }}", "12.35%"),
    ("{{ humanizeDuration 90061.5 }}", "1d 1h 1m 1s"),
    (
        "{{ eq 1 1 }} {{ ne \"a\" \"b\" }} {{ lt 1.5 2.5 }} {{ ge \"b\" \"a\" }} {{ eq \"a\" \"b\" \"a\" }}",
        "true true true true true",
    ),
    ("{{ .Labels.job }}", "node"),
    ("{{ $.Labels.job }}", "node"),
    (
        "{{ if and (gt $value 0.0) (lt $value 10.0) }}in{{ end }}",
        "in",
    ),
    ("{{ with $labels.nosuch }}x{{ end }}", ""),
    ("{{ $value | printf \"%.2f\" | printf \"[%s]\" }}", "[3.50]"),
    ("{{ printf \"%T\" $value }}", "float64"),
    (
        "{{ printf \"%6.2f%%\" (humanizePercentage $value) }}",
        "%!f(string=    35)%",
    ),
    ("{{ printf \"%.1f\" 3 }}", "%!f(int=3)"),
    ("{{ printf \"%d\" 3 }}", "3"),
    ("{{ \"a\\tb\\\"\" }}", "a\tb\""),
    (
        "{{ printf \"%g\" 100000.0 }}|{{ printf \"%g\" 1e21 }}",
        "100000|1e+21",
    ),
    (
        "{{ $labels.instance | toUpper | printf \"%s.\" }}",
        "H3:9100.",
    ),
    ("{{ printf \"%.2f\" $labels.nosuch }}", "%!f(string=)"),
    ("{{ -1 }} {{ -1.5 }}", "-1 -1.5"),
    ("{{ printf \"%+d %05d % d\" 5 -5 5 }}", "+5 -0005  5"),
    ("{{ printf \"%#v\" \"a\" }}", "\"a\""),
    (
        "{{ humanizeTimestamp 1700000000.123 }}",
        "2023-11-14 22:13:20.122 +0000 UTC",
    ),
    (
        "{{ $labels.instance | reReplaceAll \":[0-9]+\" \"\" }}",
        "h3",
    ),
    (
        "{{ printf \"%.2f\" 1.005 }} {{ printf \"%.2f\" 0.125 }} {{ printf \"%.0f\" 2.5 }} {{ printf \"%.0f\" 0.5 }}",
        "1.00 0.12 2 0",
    ),
    (
        "{{ printf \"%s\" $labels }}",
        "map[__name__:m instance:h3:9100 job:node]",
    ),
    ("{{ $externalLabels.cluster }}", ""),
    (
        "{{ . }}",
        "{map[__name__:m instance:h3:9100 job:node] map[]  3.5}",
    ),
    (
        "{{ $labels.job.x }}",
        "<error expanding template: error executing template __alert_T: template: __alert_T:1:122: executing \"__alert_T\" at <$labels.job.x>: can't evaluate field x in type string>",
    ),
    (
        "{{ .Nosuch }}",
        "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <.Nosuch>: can't evaluate field Nosuch in type struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value float64 }>",
    ),
];
/// promtool 2.42 output with the `num` fixture: (template, expected).
const NUM_CASES: &[(&str, &str)] = &[
    (
        "Instance {{ $labels.instance }}\n  VALUE = {{ $value }}\n  LABELS = {{ $labels }}",
        "Instance h1:9100\n  VALUE = 2.5\n  LABELS = map[__name__:m instance:h1:9100 job:node num:2.5]",
    ),
    (
        "{{ if gt $value 100.0 }}\n  high\n{{- else if gt $value 10.0 }}\n  mid\n{{- else }}\n  low\n{{- end }}",
        "\n  low",
    ),
    (
        "line1\n{{ .Nosuch }}",
        "<error expanding template: error executing template __alert_T: template: __alert_T:2:3: executing \"__alert_T\" at <.Nosuch>: can't evaluate field Nosuch in type struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value float64 }>",
    ),
    (
        "line1\n  {{ gt $value 1 }}",
        "<error expanding template: error executing template __alert_T: template: __alert_T:2:5: executing \"__alert_T\" at <gt $value 1>: error calling gt: incompatible types for comparison>",
    ),
    (
        "{{ printf \"%very long format string here %s\" $value 1 2 3 }}",
        "2.5ery long format string here %!s(int=1)%!(EXTRA int=2, int=3)",
    ),
    (
        "{{ humanize $labels.job }}",
        "<error expanding template: error executing template __alert_T: template: __alert_T:1:115: executing \"__alert_T\" at <humanize $labels.job>: error calling humanize: strconv.ParseFloat: parsing \"node\": invalid syntax>",
    ),
    ("{{ humanize $labels.num }}", "2.5"),
    ("{{ $labels.num | humanizePercentage }}", "250%"),
    (
        "{{ with $labels }}{{ .instance }}/{{ .job }}{{ end }}",
        "h1:9100/node",
    ),
    (
        "{{ range $labels }}{{ . }},{{ else }}empty{{ end }}",
        "m,h1:9100,node,2.5,",
    ),
    (
        "{{ range $externalLabels }}{{ . }},{{ else }}empty{{ end }}",
        "empty",
    ),
    (
        "{{ printf \"%.1f%%\" (humanizePercentage $value) }}",
        "%!f(string=2)%",
    ),
    ("{{ printf \"%5.1f%%\" $value }}", "  2.5%"),
    ("{{ $value | humanize1024 }}B", "2.5B"),
    ("{{- /* a comment */ -}}  x  {{- /* c */}}", "x"),
    (
        "{{ toUpper 5 }}",
        "<error expanding template: error executing template __alert_T: template: __alert_T:1:123: executing \"__alert_T\" at <5>: expected string; found 5>",
    ),
    (
        "{{ $x := $value }}{{ if ge $x 2.5 }}ge{{ else }}lt{{ end }}",
        "ge",
    ),
    (
        "{{ eq $value 2.5 }}|{{ ne $value 2.5 }}|{{ le $value 2.5 }}|{{ lt $value 2.5 }}",
        "true|false|true|false",
    ),
    (
        "{{ if or (eq $labels.job \"a\") (eq $labels.job \"node\") }}yes{{ end }}",
        "yes",
    ),
    (
        "{{ $labels.instance | reReplaceAll \"(\\\\w+):.*\" \"${1}\" }}",
        "h1",
    ),
    ("{{ title $labels.job }} {{ toLower \"ÀB\" }}", "Node àb"),
    (
        "{{ stripPort \"[::1]:9100\" }}|{{ stripPort \"::1\" }}|{{ stripPort \"host\" }}|{{ stripPort \"a:b:c\" }}",
        "::1|::1|host|a:b:c",
    ),
    ("{{ printf \"%s %s\" $labels.job }}", "node %!s(MISSING)"),
    (
        "{{ printf \"%-10s|%10s|\" $labels.job \"x\" }}",
        "node      |         x|",
    ),
    (
        "{{ printf \"%05.1f|%+.2e|%G|%E\" $value $value $value $value }}",
        "002.5|+2.50e+00|2.5|2.500000E+00",
    ),
    (
        "{{ printf \"%v\" . }}",
        "{map[__name__:m instance:h1:9100 job:node num:2.5] map[]  2.5}",
    ),
    ("{{ printf \"%d items\" (len $labels) }}", "4 items"),
    ("{{ index $labels \"nosuch\" }}|", "|"),
    (
        "{{ and 1 0 }}|{{ or 0 \"\" }}|{{ and }}",
        "<error expanding template: error executing template __alert_T: template: __alert_T:1:143: executing \"__alert_T\" at <and>: wrong number of args for and: want at least 1 got 0>",
    ),
    ("{{ not $labels.nosuch }}", "true"),
    ("{{ if not (eq $labels.job \"x\") }}notx{{ end }}", "notx"),
    ("{{ $value | humanize | toUpper }}", "2.5"),
    ("{{ 1 | printf \"%d-%d\" 2 }}", "2-1"),
    (
        "{{ humanizeTimestamp $value }}",
        "1970-01-01 00:00:02.5 +0000 UTC",
    ),
    ("{{ printf \"%.3f\" $value }}", "2.500"),
    ("{{ printf \"%q\" \"a\\u00e9\\x01\" }}", "\"aé\\x01\""),
    (
        "{{ print 1 2 \"x\" 3 4.5 true false }}",
        "1 2x3 4.5 true false",
    ),
    (
        "{{ if eq $labels.job \"node\" \"db\" }}multi{{ end }}",
        "multi",
    ),
    ("{{ humanize 0.000000000000000000000000001 }}", "0.001y"),
    ("{{ \"}}\" }}", "}}"),
    ("{{ `raw\\n` }}", "raw\\n"),
];
