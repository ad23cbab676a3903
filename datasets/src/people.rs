//! Synthetic personal data for the hotline: names, mobile numbers, resident ID
//! numbers. Every value is made up; ID numbers carry a valid GB 11643 check digit
//! so that validation code can be tested on them.

use crate::city::District;
use crate::noise::Noise;

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾",
    "沈", "蒋", "蔡", "叶", "程", "汪", "钱", "方",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀", "霞", "平", "刚", "桂", "婷", "浩", "宇", "欣", "怡", "佳", "晨", "嘉", "子", "文",
];
const MOBILE_PREFIXES: &[u32] = &[
    133, 135, 136, 137, 138, 139, 150, 151, 152, 157, 158, 159, 177, 180, 181, 186, 187, 188, 189,
    199,
];

/// A Chinese name: a surname and one or two given-name characters.
pub fn name(n: &Noise, stream: u64, key: u64) -> String {
    let pick =
        |k: u64, list: &[&'static str]| list[(n.bits(stream, key, k) % list.len() as u64) as usize];
    let mut s = String::from(pick(1, SURNAMES));
    s.push_str(pick(2, GIVEN));
    if n.unit(stream, key, 3) < 0.7 {
        s.push_str(pick(4, GIVEN));
    }
    s
}

/// An 11-digit mobile number.
pub fn mobile(n: &Noise, stream: u64, key: u64) -> String {
    let prefix = MOBILE_PREFIXES[(n.bits(stream, key, 5) % MOBILE_PREFIXES.len() as u64) as usize];
    format!("{prefix}{:08}", n.bits(stream, key, 6) % 100_000_000)
}

/// An 18-character resident ID number registered in `district`, born in the given year range.
pub fn id_number(n: &Noise, stream: u64, key: u64, district: &District, year: i32) -> String {
    let age = n.range(stream, key, 7, 18, 85) as i32;
    let month = n.range(stream, key, 8, 1, 12);
    let day = n.range(stream, key, 9, 1, 28);
    let seq = n.range(stream, key, 10, 0, 999);
    let body = format!(
        "{}{:04}{month:02}{day:02}{seq:03}",
        district.admin_code,
        year - age
    );
    format!("{body}{}", id_check_digit(&body))
}

/// GB 11643-1999 check character (ISO 7064 MOD 11-2) of the first 17 digits.
pub fn id_check_digit(body: &str) -> char {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .chars()
        .zip(WEIGHTS)
        .map(|(c, w)| c.to_digit(10).unwrap_or(0) * w)
        .sum();
    ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digit_matches_the_standard_example() {
        // the worked example of GB 11643: 11010519491231002X
        assert_eq!(id_check_digit("11010519491231002"), 'X');
    }

    #[test]
    fn values_have_their_formats() {
        let n = Noise::new(1);
        let id = id_number(&n, 1, 2, &crate::city::DISTRICTS[0], 2025);
        assert_eq!(id.len(), 18);
        assert!(id.starts_with("330102"));
        assert_eq!(mobile(&n, 1, 2).len(), 11);
        assert!(name(&n, 1, 2).chars().count() >= 2);
    }
}
